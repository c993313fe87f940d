"""APIs of other shapes, over real sockets: the worked examples in docs/examples/ against small fakes of their own.

Each fake is a `WireFormat` plugged into the `FakeServer` and checks the request in its API's own shape, so
that a provider file that renders it wrong fails here:

- ``edgerun``: a JSON envelope API; ``@`` and ``/`` of the model id in the path; a 200 whose envelope says it
  failed; integer error codes; plain SSE.
- ``tally``: token counts only in response headers; typed SSE events (``event:`` lines, ``data:`` with no
  space, a ``ping`` event with no rule).
- ``tokengen``: one prompt string in the Llama 3 chat template; special tokens in the stream; the last event
  carries ``generated_text``, which may be empty.
- ``relay``: the newest turn apart from the history, keys and roles renamed, alternation enforced; NDJSON
  told apart by a field, served as ``application/stream+json``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from engine import CompletionResponse, Engine, Settings
from engine.testing import Call, FakeServer, WireError, WireFormat, sse

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
KEY = "sk-outside-0123456789"
ACCOUNT = "acc-7f3e"


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class EdgeRun(WireFormat):
    """The envelope API: ``POST .../accounts/<id>/ai/run/@<org>/<family>/<model>``."""

    name = "edgerun"
    path = re.compile(r"/client/v4/accounts/(?P<account>[\w-]+)/ai/run/(?P<model>@[\w.-]+/[\w.-]+/[\w.-]+)$")

    def request_id_headers(self, number: int) -> list[tuple[str, str]]:
        return [("cf-ray", f"8f{number:04d}-LHR")]

    def model(self, body: dict[str, Any], match: re.Match[str]) -> str:
        if match.group("account") != ACCOUNT:
            raise WireError(f"unknown account {match.group('account')}")
        return match.group("model")

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) and set(m) == {"role", "content"}
                                                     and isinstance(m["content"], str) for m in messages):
            raise WireError("messages must be [{role, content: text}]")
        return messages

    def usage(self, call: Call) -> dict[str, int]:
        return {"prompt_tokens": call.input_tokens, "completion_tokens": call.output_tokens,
                "total_tokens": call.input_tokens + call.output_tokens}

    def reply(self, call: Call) -> dict[str, Any]:
        if "unknown" in call.model:
            return {"result": None, "success": False, "messages": [],
                    "errors": [{"code": 5007, "message": f"No such model {call.model}"}]}
        result = {"response": call.text, "usage": self.usage(call)}
        if "[busy]" in call.text:  # an answer, and an envelope that says the call failed all the same
            return {"result": result, "success": False, "messages": [],
                    "errors": [{"code": 3040, "message": "Capacity temporarily exceeded"}]}
        return {"result": result, "success": True, "errors": [], "messages": []}

    def stream(self, call: Call) -> list[bytes]:
        events = [sse({"response": d, "p": "abcdef"}) for d in call.deltas]
        return [*events, sse({"response": "", "usage": self.usage(call)}), b"data: [DONE]\n\n"]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        code = 10000 if status in (401, 403) else 7000 + status
        return {"result": None, "success": False, "errors": [{"code": code, "message": message}], "messages": []}

    def stream_error(self, message: str) -> bytes:
        return sse({"errors": [{"code": 3040, "message": message}]})


class Tally(WireFormat):
    """Counts in headers; typed SSE events written ``event:x`` / ``data:{...}`` with no spaces."""

    name = "tally"
    path = re.compile(r"/v2/generate$")

    def request_id_headers(self, number: int) -> list[tuple[str, str]]:
        return [("x-tally-request", f"t-{number}")]

    def reply_headers(self, call: Call) -> list[tuple[str, str]]:
        counts = [("x-prompt-tokens", str(call.input_tokens))]
        return counts if call.stream else [*counts, ("x-completion-tokens", str(call.output_tokens))]

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return EdgeRun.messages(self, body)  # type: ignore[arg-type]

    def reply(self, call: Call) -> dict[str, Any]:
        return {"id": f"gen-{call.number}", "model": call.model, "output": call.text, "stop_reason": "end"}

    @staticmethod
    def event(name: str, data: Any) -> bytes:
        return b"event:" + name.encode() + b"\ndata:" + dumps(data) + b"\n\n"

    def stream(self, call: Call) -> list[bytes]:
        events = [b": connected\n\n", self.event("ping", {})]
        events += [self.event("token", {"text": d}) for d in call.deltas]
        return [*events, self.event("done", {"stop_reason": "end", "tokens": call.output_tokens})]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = {401: "bad_key", 429: "busy"}.get(status, "failure")
        return {"error": {"kind": kind, "detail": message}}

    def stream_error(self, message: str) -> bytes:
        return self.event("error", {"kind": "busy", "detail": message})


LLAMA3_TURN = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.S)


class TokenGen(WireFormat):
    """A text-generation server: ``/generate`` and ``/generate_stream`` take ``inputs``, one prompt string."""

    name = "tokengen"
    path = re.compile(r"/generate(?P<stream>_stream)?$")
    needs_key = False  # a server of your own: no key

    def wants_stream(self, body: dict[str, Any], match: re.Match[str]) -> bool:
        return match.group("stream") is not None

    def model(self, body: dict[str, Any], match: re.Match[str]) -> str:
        return "llama-3.1-8b-instruct"  # the server runs one model and does not say which

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        prompt = body.get("inputs")
        opening, generation = "<|begin_of_text|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"
        if not isinstance(prompt, str) or not prompt.startswith(opening) or not prompt.endswith(generation):
            raise WireError("inputs must be a Llama 3 prompt that opens the assistant's turn")
        turns = LLAMA3_TURN.findall(prompt[len(opening):-len(generation)])
        if LLAMA3_TURN.sub("", prompt[len(opening):-len(generation)]):
            raise WireError("inputs has text outside its turns")
        return [{"role": role, "content": text} for role, text in turns]

    def reply_headers(self, call: Call) -> list[tuple[str, str]]:
        counts = [("x-prompt-tokens", str(call.input_tokens))]
        return counts if call.stream else [*counts, ("x-generated-tokens", str(call.output_tokens))]

    def reply(self, call: Call) -> dict[str, Any]:
        return {"generated_text": call.text, "details": {"finish_reason": "eos_token",
                                                         "generated_tokens": call.output_tokens, "seed": None}}

    def stream(self, call: Call) -> list[bytes]:
        events = [b"data:" + dumps({"index": i, "token": {"id": 1000 + i, "text": d, "logprob": -0.1,
                                                           "special": False},
                                    "generated_text": None, "details": None}) + b"\n\n"
                  for i, d in enumerate(call.deltas, 1) if d]
        end = {"index": len(events) + 1, "token": {"id": 128009, "text": "<|eot_id|>", "logprob": 0.0, "special": True},
               "generated_text": call.text,
               "details": {"finish_reason": "eos_token", "generated_tokens": call.output_tokens, "seed": None}}
        return [*events, b"data:" + dumps(end) + b"\n\n"]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message, "error_type": "validation" if status < 500 else "generation"}

    def stream_error(self, message: str) -> bytes:
        return b"data:" + dumps({"error": message, "error_type": "generation"}) + b"\n\n"


class Relay(WireFormat):
    """``message`` (the newest turn), ``chat_history`` ({role: USER | CHATBOT, message}), ``preamble``."""

    name = "relay"
    path = re.compile(r"/v1/chat$")
    stream_content_type = "application/stream+json"

    def system_text(self, body: dict[str, Any]) -> str:
        return str(body.get("preamble") or "")

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        message, history = body.get("message"), body.get("chat_history", [])
        if not isinstance(message, str) or not message:
            raise WireError("message must be the newest user turn's text")
        if not isinstance(history, list):
            raise WireError("chat_history must be a list")
        turns = []
        for i, turn in enumerate(history):
            if not isinstance(turn, dict) or set(turn) != {"role", "message"} \
                    or turn["role"] not in ("USER", "CHATBOT") or not isinstance(turn["message"], str):
                raise WireError(f"chat_history[{i}] must be {{role: USER | CHATBOT, message: text}}, got {turn!r}")
            turns.append({"role": "user" if turn["role"] == "USER" else "assistant", "content": turn["message"]})
        turns.append({"role": "user", "content": message})
        for before, after in itertools.pairwise(turns):
            if before["role"] == after["role"]:
                raise WireError("turns must alternate between USER and CHATBOT")
        return turns

    def reply(self, call: Call) -> dict[str, Any]:
        return {"response_id": f"r-{call.number}", "generation_id": f"g-{call.number}", "text": call.text,
                "finish_reason": "COMPLETE",
                "meta": {"billed_units": {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens}}}

    def stream(self, call: Call) -> list[bytes]:
        lines = [{"is_finished": False, "event_type": "stream-start", "generation_id": f"g-{call.number}"}]
        lines += [{"is_finished": False, "event_type": "text-generation", "text": d} for d in call.deltas]
        lines.append({"is_finished": True, "event_type": "stream-end", "finish_reason": "COMPLETE",
                      "response": self.reply(call)})
        return [dumps(line) + b"\n" for line in lines]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"message": message}

    def stream_error(self, message: str) -> bytes:
        return dumps({"is_finished": True, "event_type": "stream-end", "finish_reason": "ERROR",
                      "error": message}) + b"\n"


ROOTS = {"edgerun": "/client/v4", "tally": "", "tokengen": "", "relay": "/v1"}
MODELS = {"edgerun": "edgerun/@cf/meta/llama-3.1-8b-instruct", "tally": "tally/tally-1",
          "tokengen": "tokengen/llama-3.1-8b-instruct", "relay": "relay/relay-chat"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer(chunk_size=7, max_seconds=300, api_key=KEY,
                    formats=[EdgeRun(), Tally(), TokenGen(), Relay()]) as fake:
        yield fake


def settings_for(server: FakeServer, key: str = KEY) -> Settings:
    return Settings(providers_path=[EXAMPLES], max_retries=0,
                    api_keys={name: SecretStr(key) for name in ROOTS},
                    base_urls={name: server.base_url + root for name, root in ROOTS.items()},
                    provider_config={"edgerun": {"account_id": ACCOUNT}})


def call(server: FakeServer, provider: str, messages: list[dict[str, Any]] | str, *, stream: bool,
         mode: str = "sync", key: str = KEY, model: str | None = None,
         **options: Any) -> tuple[CompletionResponse, list[str]]:
    """One call; a streamed one also gives the texts its iterator yielded."""
    settings = settings_for(server, key)
    target = f"{provider}/{model}" if model else MODELS[provider]
    if mode == "sync":
        with Engine(settings) as engine:
            if not stream:
                return engine.complete(target, messages, **options), []
            handle = engine.stream(target, messages, **options)
            texts = list(handle)
            assert handle.response is not None
            return handle.response, texts

    async def go() -> tuple[CompletionResponse, list[str]]:
        async with Engine(settings) as engine:
            if not stream:
                return await engine.acomplete(target, messages, **options), []
            ahandle = engine.astream(target, messages, **options)
            texts = [t async for t in ahandle]
            assert ahandle.response is not None
            return ahandle.response, texts

    return asyncio.run(go())


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "user", "content": [{"type": "text", "text": "Still there?"}]},
    {"role": "assistant", "content": "Yes."},
    {"role": "user", "content": "Name a colour."},
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", sorted(ROOTS))
def test_a_conversation_round_trip(server: FakeServer, provider: str, stream: bool, mode: str) -> None:
    result, texts = call(server, provider, CONVERSATION, stream=stream, mode=mode, max_tokens=50)
    assert result.success, result.error
    expected = server.reply_for(server.requests[-1])
    assert expected.endswith("you said: Name a colour. ✓")  # the fake read the newest turn in its own shape
    assert result.content == expected
    if stream:
        assert "".join(texts) == expected and len(texts) > 1
    assert result.finish_reason == (None if provider == "edgerun" else "stop")  # edgerun's replies give none
    assert result.input_tokens and result.input_tokens > 0 and result.output_tokens and result.output_tokens > 0
    assert result.cost_usd is not None and result.cost_usd >= 0


def test_edgerun_puts_the_model_id_in_the_path_as_segments(server: FakeServer) -> None:
    result, _ = call(server, "edgerun", "Hi", stream=False)
    assert result.success, result.error
    assert server.requests[-1].path == f"/client/v4/accounts/{ACCOUNT}/ai/run/@cf/meta/llama-3.1-8b-instruct"
    assert result.request_id is not None and re.fullmatch(r"8f\d{4}-LHR", result.request_id)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_edgerun_a_200_envelope_without_an_answer_fails(server: FakeServer, mode: str) -> None:
    result, _ = call(server, "edgerun", "Hi", stream=False, mode=mode, model="@cf/unknown/model-7b")
    assert not result.success and result.error_kind == "not_found"
    assert result.error_message == "No such model @cf/unknown/model-7b" and result.error_code == "5007"
    assert result.request_id and result.request_id.endswith("-LHR")
    assert "No such model" in (result.error or "")


def test_edgerun_a_200_envelope_that_says_it_failed_fails_even_with_an_answer(server: FakeServer) -> None:
    result, _ = call(server, "edgerun", "Please [busy] now", stream=False)
    assert not result.success and result.error_kind == "rate_limit"
    assert result.error_code == "3040" and result.error_message == "Capacity temporarily exceeded"


def test_edgerun_an_integer_code_on_a_401_maps_to_auth(server: FakeServer) -> None:
    result, _ = call(server, "edgerun", "Hi", stream=False, key="wrong-key")
    assert not result.success and result.error_kind == "auth" and result.error_code == "10000"
    assert result.error == "HTTP 401: invalid API key (10000)"
    result, _ = call(server, "edgerun", "Hi", stream=True, key="wrong-key")
    assert not result.success and result.error_kind == "auth"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_tally_reads_counts_from_headers(server: FakeServer, stream: bool) -> None:
    result, _ = call(server, "tally", "Count these four words", stream=stream)
    assert result.success, result.error
    assert result.input_tokens == 4  # the fake counts the words; the body never says
    assert result.output_tokens is not None and result.output_tokens > 0
    assert result.request_id and result.request_id.startswith("t-")
    assert result.warnings == []


def test_tally_errors_read_their_kind_and_a_stream_error_event(server: FakeServer) -> None:
    from engine.testing import Fault

    server.inject(Fault("status", status=429, message="slow down"))
    result, _ = call(server, "tally", "Hi", stream=False)
    assert not result.success and result.error_kind == "rate_limit" and result.error_message == "slow down"
    server.inject(Fault("stream_error", after_events=3, message="overloaded"))
    result, _ = call(server, "tally", "Hi there friend", stream=True)
    assert not result.success and result.error_kind == "rate_limit" and "overloaded" in (result.error or "")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_tokengen_special_tokens_are_not_text(server: FakeServer, stream: bool) -> None:
    result, texts = call(server, "tokengen", CONVERSATION, stream=stream)
    assert result.success, result.error
    assert "<|eot_id|>" not in result.content and "<|eot_id|>" not in "".join(texts)
    prompt = server.requests[-1].json()["inputs"]
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>")
    assert "Hi\n\nStill there?" not in prompt  # a chat template keeps turns as they are (no merging)
    assert result.input_tokens and result.output_tokens


def test_tokengen_an_empty_answer_still_ends_the_stream() -> None:
    with FakeServer(chunk_size=7, max_seconds=60, reply="", formats=[TokenGen()]) as empty:
        result, texts = call(empty, "tokengen", "Say nothing", stream=True)
    assert result.success, result.error  # generated_text "" ends it: the condition is not truthiness
    assert result.content == "" and texts == []


def test_relay_merges_turns_and_renames_keys_and_roles(server: FakeServer) -> None:
    result, _ = call(server, "relay", CONVERSATION, stream=False)
    assert result.success, result.error
    body = server.requests[-1].json()
    assert body["message"] == "Name a colour." and body["preamble"] == "Be brief."
    assert body["chat_history"] == [{"role": "USER", "message": "Hi\n\nStill there?"},
                                    {"role": "CHATBOT", "message": "Yes."}]


def test_relay_a_stream_error_line_fails_the_call(server: FakeServer) -> None:
    from engine.testing import Fault

    server.inject(Fault("stream_error", after_events=2, message="generation failed"))
    result, _ = call(server, "relay", "Hi there friend", stream=True)
    assert not result.success and "generation failed" in (result.error or "")


def test_every_example_is_shown_in_the_reference() -> None:
    page = (EXAMPLES.parent / "provider-format.md").read_text(encoding="utf-8")
    for path in EXAMPLES.glob("*.yaml"):
        assert f"examples/{path.name}" in page, path.name
