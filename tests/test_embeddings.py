"""Embeddings: every provider that has them, end to end over real sockets against the fake server (which checks
each request in its API's own shape and answers deterministic vectors), sync and async; batching, partial
failures, refusals, bad replies, and Bedrock through real boto3."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from engine import EmbeddingRequest, EmbeddingResponse, Engine, Settings
from engine.errors import UnknownOptionError
from engine.registry import Registry
from engine.testing import FakeServer, Fault
from engine.testing.embeddings import vector_for

from .conftest import make_settings

REGISTRY = Registry(make_settings())
# The providers with embeddings, and a model for those whose file names no default.
PROVIDERS = {name: REGISTRY.spec(name).embeddings.default_model  # type: ignore[union-attr]
             for name in REGISTRY.names()
             if REGISTRY.spec(name).embeddings is not None}
MODELS = {name: model or "example-embedding-model" for name, model in PROVIDERS.items()}
TEXTS = [f"text number {i} — ✓" for i in range(7)]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer(chunk_size=5, max_seconds=300) as fake:
        yield fake


def settings_for(server: FakeServer, **overrides: Any) -> Settings:
    config = {"azure-openai": {"resource": "r"},
              "azure-openai-entra": {"resource": "r", "access_token": "sk-embed-test"},
              "vertex-gemini": {"project": "p", "access_token": "sk-embed-test"}}
    values: dict[str, Any] = {"api_keys": {name: SecretStr("sk-embed-test") for name in PROVIDERS},
                              "base_urls": {name: server.base_url for name in PROVIDERS},
                              "provider_config": config, "max_retries": 0, "timeout": 10.0, **overrides}
    return Settings(**values)


def embed(server: FakeServer, provider: str, texts: list[str] | str, *, mode: str = "sync",
          settings: Settings | None = None, **options: Any) -> EmbeddingResponse:
    model = f"{provider}/{options.pop('model', MODELS[provider])}"
    settings = settings or settings_for(server)
    if mode == "sync":
        with Engine(settings) as engine:
            return engine.embed(model, texts, **options)

    async def go() -> EmbeddingResponse:
        async with Engine(settings) as engine:
            return await engine.aembed(model, texts, **options)

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_provider_embeds_in_its_own_wire_format(server: FakeServer, provider: str, mode: str) -> None:
    result = embed(server, provider, TEXTS, mode=mode)
    assert result.success, result.error
    assert result.vectors == [vector_for(t) for t in TEXTS]  # every vector, in input order
    assert result.dimensions == 8 and result.failed == [] and result.provider == provider
    spec = REGISTRY.spec(provider).embeddings
    assert spec is not None
    size = spec.model_max_batch.get(MODELS[provider], spec.max_batch)
    assert result.batches == -(-len(TEXTS) // size)
    if REGISTRY.spec(provider).embeddings.response.input_tokens is not None:  # type: ignore[union-attr]
        assert result.input_tokens == sum(len(t.split()) for t in TEXTS)
    if result.cost_usd is not None:
        assert result.cost_usd > 0 or REGISTRY.spec(provider).local


def test_one_text_gives_one_vector(server: FakeServer) -> None:
    result = embed(server, "openai", "just one")
    assert result.success and result.vectors == [vector_for("just one")]


def test_long_lists_are_split_into_batches_sent_concurrently(server: FakeServer) -> None:
    texts = [f"t{i}" for i in range(250)]
    before = len(server.requests)
    result = embed(server, "cohere", texts, settings=settings_for(server, embed_concurrency=2))
    assert result.success and result.vectors == [vector_for(t) for t in texts]
    sent = [json.loads(r.body)["texts"] for r in server.requests[before:]]
    assert sorted(len(batch) for batch in sent) == [58, 96, 96] and result.batches == 3
    assert sorted(t for batch in sent for t in batch) == sorted(texts)
    # The OpenAI fake answers items in reverse order, each naming its input: they are put back in order.
    assert embed(server, "openai", texts).vectors == [vector_for(t) for t in texts]


@pytest.mark.parametrize(("provider", "field", "value"), [
    ("openai", "dimensions", 16), ("cohere", "output_dimension", 16), ("gemini", "outputDimensionality", 16),
    ("voyage", "output_dimension", 16), ("ollama", "dimensions", 16),
])
def test_dimensions_are_sent_under_each_apis_name(server: FakeServer, provider: str, field: str, value: int) -> None:
    result = embed(server, provider, ["a", "b"], dimensions=value)
    assert result.success and result.dimensions == value and result.vectors[0] == vector_for("a", value)
    assert field in server.requests[-1].body.decode()


@pytest.mark.parametrize(("provider", "input_type", "sent"), [
    ("cohere", "query", "search_query"), ("cohere", None, "search_document"), ("cohere", "clustering", "clustering"),
    ("gemini", "document", "RETRIEVAL_DOCUMENT"), ("voyage", "query", "query"),
    ("vertex-gemini", "query", "RETRIEVAL_QUERY"),
])
def test_input_type_is_written_in_each_apis_words(server: FakeServer, provider: str, input_type: str | None,
                                                  sent: str) -> None:
    options = {"input_type": input_type} if input_type else {}
    assert embed(server, provider, ["a"], **options).success
    assert f'"{sent}"' in server.requests[-1].body.decode()


def test_an_option_the_api_does_not_take_is_refused_before_sending(server: FakeServer) -> None:
    before = len(server.requests)
    for provider, option in (("together", {"dimensions": 64}), ("openai", {"input_type": "query"}),
                             ("cohere", {"user": "u1"}), ("huggingface", {"dimensions": 8})):
        result = embed(server, provider, ["a", "b"], **option)
        name = next(iter(option))
        assert not result.success and result.error_kind == "invalid_request", provider
        assert f"does not take {name}" in (result.error or "") and "nothing was sent" in (result.error or "")
        assert result.vectors == [None, None] and result.failed == [0, 1]
    assert len(server.requests) == before


def test_a_chat_model_or_a_provider_without_embeddings_is_refused(server: FakeServer) -> None:
    result = embed(server, "openai", ["a"], model="gpt-4o")
    assert not result.success and "gpt-4o does not take embeddings (it is a chat model" in (result.error or "")
    settings = settings_for(server)
    settings.api_keys["anthropic"] = SecretStr("sk-any")
    with Engine(settings) as engine:
        refused = engine.embed("anthropic", ["a"])
        assert not refused.success and refused.error_kind == "invalid_request"
        assert "its provider file has no embeddings section" in (refused.error or "")
        chat = engine.complete("voyage/voyage-4", "hi")
        assert not chat.success and "does not take chat completions" in (chat.error or "")


def test_a_failed_batch_leaves_its_inputs_without_vectors_and_says_which(server: FakeServer) -> None:
    texts = [f"t{i}" for i in range(200)]
    settings = settings_for(server, embed_concurrency=1)  # batches in order: the second one fails
    server.inject(Fault("status", status=429, message="slow down"))  # the first batch's request
    result = embed(server, "cohere", texts, settings=settings)
    assert not result.success and result.error_kind == "rate_limit" and result.status_code == 429
    assert result.failed == list(range(96))
    assert result.vectors[:96] == [None] * 96 and result.vectors[96:] == [vector_for(t) for t in texts[96:]]
    assert result.error == "1 of 3 batches failed: inputs 0-95: HTTP 429: slow down"
    assert result.input_tokens == 104  # the batches that succeeded
    server.inject(Fault("status", status=401, message="bad key"))
    single = embed(server, "openai", ["a"])
    assert single.error == "HTTP 401: bad key (invalid_api_key)" and single.error_kind == "auth"


@pytest.mark.parametrize("fault", [Fault("html"), Fault("truncated_json"), Fault("reset"),
                                   Fault("timeout", seconds=3)])
def test_transport_and_body_faults_are_typed_failures(server: FakeServer, fault: Fault) -> None:
    server.inject(fault)
    result = embed(server, "voyage", ["a", "b"], settings=settings_for(server, timeout=1.0))
    assert not result.success and result.vectors == [None, None]
    assert result.error_kind in ("server", "invalid_response", "connection", "timeout"), result.error


def test_retries_apply_to_each_batch(server: FakeServer) -> None:
    server.inject(Fault("status", status=503))
    result = embed(server, "mistral", ["a", "b"], settings=settings_for(server, max_retries=1,
                                                                         retry_initial_delay=0.01))
    assert result.success and result.vectors == [vector_for("a"), vector_for("b")]


def test_keyword_options_are_checked(server: FakeServer) -> None:
    with Engine(settings_for(server)) as engine, pytest.raises(UnknownOptionError, match="did you mean 'dimensions'"):
        engine.embed("openai", ["a"], dimension=8)


# -- bad replies, without a server ---------------------------------------------------------------------------

def replayed(body: Any, provider: str = "openai", inputs: list[str] | None = None) -> EmbeddingResponse:
    text = body if isinstance(body, str) else json.dumps(body)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=text.encode(), headers={"content-type": "application/json"})

    async def go() -> EmbeddingResponse:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with client:
            provider_ = Registry(make_settings()).create(provider, http_client=client)
            return await provider_.embed(EmbeddingRequest(inputs=inputs or ["a", "b", "c"]))

    return asyncio.run(go())


def data(*vectors: Any) -> dict[str, Any]:
    return {"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)], "model": "m"}


@pytest.mark.parametrize(("body", "problem"), [
    (data([1.0], [2.0]), "sent 3 inputs, got 2 vectors"),
    (data([1.0], [2.0], [3.0], [4.0]), "sent 3 inputs, got 4 vectors"),
    (data([1.0], [2.0, 2.0], [3.0]), "different lengths"),
    (data([1.0], ["x"], [3.0]), "vector 1 holds something other than finite numbers"),
    (data([1.0], [], [3.0]), "vector 1 is not a list of numbers"),
    ({"data": [{"index": 5, "embedding": [1.0]}, {"index": 1, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]},
     "indexes"),
])
def test_a_reply_with_wrong_vectors_is_an_invalid_response(body: Any, problem: str) -> None:
    result = replayed(body)
    assert not result.success and result.error_kind == "invalid_response" and problem in (result.error or "")
    assert result.vectors == [None] * 3


def test_non_finite_numbers_and_error_bodies_on_200() -> None:
    result = replayed(json.dumps(data([1.0], [2.0], [3.0])).replace("2.0", "NaN"))  # some servers send NaN
    assert not result.success and "finite" in (result.error or "")
    envelope = replayed({"error": {"message": "model overloaded", "type": "server_error"}})
    assert not envelope.success and envelope.error == "HTTP 200: model overloaded (server_error)"


def test_base64_vectors_are_decoded() -> None:
    import array
    import base64

    packed = [base64.b64encode(array.array("f", v).tobytes()).decode() for v in ([0.5, -1.0], [2.0, 0.25])]
    result = replayed({"data": [{"index": i, "embedding": p} for i, p in enumerate(packed)]}, inputs=["a", "b"])
    assert result.success and result.vectors == [[0.5, -1.0], [2.0, 0.25]]


# -- Bedrock through real boto3 ------------------------------------------------------------------------------

@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    pytest.importorskip("boto3", reason="the [bedrock] extra (installed by [dev])")
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("model", "requests"), [("titan-embed-v2", 5), ("cohere-embed-v4", 1)])
def test_bedrock_embeds_through_invoke_model(aws: None, model: str, requests: int, mode: str) -> None:
    from engine.testing import BedrockServer

    texts = [f"bedrock text {i}" for i in range(5)]
    with BedrockServer(max_seconds=60) as bedrock:
        settings = make_settings(provider_config={"bedrock": {"endpoint_url": bedrock.endpoint_url,
                                                               "region": "us-east-1"}}, max_retries=0)
        if mode == "sync":
            with Engine(settings) as engine:
                result = engine.embed(f"bedrock/{model}", texts, input_type="query")
        else:
            async def go() -> EmbeddingResponse:
                async with Engine(settings) as engine:
                    return await engine.aembed(f"bedrock/{model}", texts, input_type="query")
            result = asyncio.run(go())
        assert result.success, result.error
        assert result.vectors == [vector_for(t) for t in texts] and result.batches == requests
        assert len(bedrock.requests) == requests and all(r.path.endswith("/invoke") for r in bedrock.requests)
        assert result.input_tokens == 15 and result.cost_usd is not None and result.cost_usd > 0
        if model.startswith("cohere"):
            assert bedrock.requests[0].body["input_type"] == "search_query"


def test_bedrock_refuses_a_chat_model_for_embeddings(aws: None) -> None:
    with Engine(make_settings(provider_config={"bedrock": {"region": "us-east-1"}})) as engine:
        result = engine.embed("bedrock/nova-micro", ["a"])
    assert not result.success and "it is a chat model" in (result.error or "")


# -- the command line ----------------------------------------------------------------------------------------

def test_genai_embed_and_render_embed(server: FakeServer, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from engine.cli import main

    monkeypatch.setenv("GENAI_OPENAI_BASE_URL", server.base_url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test")
    assert main(["embed", "-m", "openai/text-embedding-3-small", "The capital of France", "Paris"]) == 0
    out, err = capsys.readouterr()
    first = vector_for("The capital of France")
    assert out.splitlines()[0] == "0: [" + ", ".join(f"{x:.4f}" for x in first[:4]) + ", …] (8 dimensions)"
    assert "openai/text-embedding-3-small · 2 vectors × 8 · 5 tokens · $" in err
    texts = tmp_path / "texts.txt"
    texts.write_text("one\n\ntwo\nthree\n", encoding="utf-8")
    assert main(["embed", "-m", "openai", "--input", str(texts), "--dimensions", "4", "--json"]) == 0
    response = json.loads(capsys.readouterr().out)
    assert response["vectors"] == [vector_for(t, 4) for t in ("one", "two", "three")]
    monkeypatch.setenv("TOGETHER_API_KEY", "sk-cli-test")
    assert main(["embed", "-m", "together", "--dimensions", "4", "x"]) == 1
    assert "does not take dimensions" in capsys.readouterr().err
    assert main(["render", "-m", "voyage", "--embed", "--input-type", "document", "--json", "a", "b"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["url"] == "https://api.voyageai.com/v1/embeddings"
    assert shown["body"] == {"model": "voyage-4", "input": ["a", "b"], "input_type": "document",
                             "output_dtype": "float"}
    assert shown["headers"]["Authorization"] == "***"
