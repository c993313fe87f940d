"""Embeddings wire formats the fake server speaks: one class per API family, checking the request in the API's
own shape and answering with deterministic vectors (`vector_for`), so a test can check every vector and its
place.

Families: OpenAI ``/embeddings`` (also Azure deployments, Mistral, Together, Fireworks, Ollama's and local
servers' ``/v1/embeddings``, and Voyage), Gemini ``:batchEmbedContents``, Vertex AI ``:predict``, Cohere
``/v2/embed``, Ollama ``/api/embed``, and Hugging Face's ``/pipeline/feature-extraction``.
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Any, ClassVar

from .wire import WireError

DEFAULT_DIMENSIONS = 8


def vector_for(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The vector the fake server answers for a text: a function of the text and the length only."""
    digest = b""
    counter = 0
    while len(digest) < 4 * dimensions:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    words = struct.unpack(f"<{dimensions}I", digest[:4 * dimensions])
    return [round(w / 2**31 - 1.0, 6) for w in words]


def tokens_for(text: str) -> int:
    """The token count the fake server reports for a text (its words, at least one)."""
    return max(1, len(text.split()))


def _texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise WireError(f"{where} must be a non-empty list of strings")
    return value


def _dimensions(value: Any) -> int:
    if value is None:
        return DEFAULT_DIMENSIONS
    if type(value) is not int or not 1 <= value <= 4096:
        raise WireError(f"the dimensions must be a whole number from 1 to 4096, got {value!r}")
    return value


class EmbeddingFormat:
    """An embeddings API family, as the fake server speaks it."""

    name: ClassVar[str]
    path: ClassVar[re.Pattern[str]]
    max_batch: ClassVar[int] = 2048
    needs_key: ClassVar[bool] = True  # whether FakeServer(api_key=...) checks the key of its requests

    def matches(self, path: str) -> re.Match[str] | None:
        return self.path.search(path)

    def request(self, body: dict[str, Any], match: re.Match[str]) -> tuple[str, list[str], int]:
        """(model, texts, dimensions) of a request; raises `WireError` when it is not in the native shape."""
        raise NotImplementedError

    def reply(self, model: str, texts: list[str], vectors: list[list[float]]) -> Any:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                          "code": "invalid_api_key" if status == 401 else None}}


class OpenAIEmbeddings(EmbeddingFormat):
    """``/embeddings`` with ``input`` (OpenAI, Azure deployments, Mistral, Together, Fireworks, local servers),
    and Voyage's variant (``input_type`` and ``output_dimension``)."""

    name = "openai-embeddings"
    path = re.compile(r"/embeddings$")

    def request(self, body: dict[str, Any], match: re.Match[str]) -> tuple[str, list[str], int]:
        texts = _texts(body.get("input"), "input")
        if len(texts) > self.max_batch:
            raise WireError(f"at most {self.max_batch} inputs in one request, got {len(texts)}")
        if body.get("encoding_format", "float") != "float" or body.get("output_dtype", "float") != "float":
            raise WireError("the fake server answers float vectors only")
        if "dimensions" in body and "output_dimension" in body:
            raise WireError("dimensions and output_dimension are two APIs' names for one thing; send one")
        model = body.get("model")
        return model if isinstance(model, str) else "local-embedding-model", texts, \
            _dimensions(body.get("dimensions", body.get("output_dimension")))

    def reply(self, model: str, texts: list[str], vectors: list[list[float]]) -> Any:
        # Items in reverse: each says which input it answers, and a client must put them back in order.
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)][::-1]
        tokens = sum(tokens_for(t) for t in texts)
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class GeminiEmbeddings(EmbeddingFormat):
    """``models/<model>:batchEmbedContents`` with one request per text, each naming the model."""

    name = "gemini-embeddings"
    path = re.compile(r"/models/(?P<model>[^/:]+):batchEmbedContents$")
    max_batch = 100

    def request(self, body: dict[str, Any], match: re.Match[str]) -> tuple[str, list[str], int]:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise WireError("requests must be a non-empty list")
        if len(requests) > self.max_batch:
            raise WireError(f"BatchEmbedContentsRequest.requests: at most {self.max_batch} requests can be in one "
                            "batch")
        texts, dimensions = [], set()
        for i, item in enumerate(requests):
            if not isinstance(item, dict) or item.get("model") != f"models/{match['model']}":
                raise WireError(f"requests[{i}].model must be models/{match['model']}")
            parts = (item.get("content") or {}).get("parts") if isinstance(item.get("content"), dict) else None
            if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0].get("text"), str):
                raise WireError(f"requests[{i}].content must be {{parts: [{{text: ...}}]}}")
            texts.append(parts[0]["text"])
            dimensions.add(item.get("outputDimensionality"))
        if len(dimensions) != 1:
            raise WireError("every request must ask for the same outputDimensionality")
        return match["model"], texts, _dimensions(dimensions.pop())

    def reply(self, model: str, texts: list[str], vectors: list[list[float]]) -> Any:
        return {"embeddings": [{"values": v} for v in vectors],
                "usageMetadata": {"promptTokenCount": sum(tokens_for(t) for t in texts)}}

    def error_body(self, status: int, message: str) -> Any:
        names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED"}
        return {"error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}}


class VertexEmbeddings(GeminiEmbeddings):
    """Vertex AI's ``publishers/google/models/<model>:predict``: ``instances`` of ``content``; one instance
    a request for gemini-embedding-001."""

    name = "vertex-embeddings"
    path = re.compile(r"/publishers/google/models/(?P<model>[^/:]+):predict$")
    max_batch = 250

    def request(self, body: dict[str, Any], match: re.Match[str]) -> tuple[str, list[str], int]:
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise WireError("instances must be a non-empty list")
        limit = 1 if match["model"] == "gemini-embedding-001" else self.max_batch
        if len(instances) > limit:
            raise WireError(f"{match['model']} takes at most {limit} instance(s) a request, got {len(instances)}")
        texts = [item.get("content") if isinstance(item, dict) else None for item in instances]
        parameters = body.get("parameters") or {}
        return match["model"], _texts(texts, "instances[].content"), \
            _dimensions(parameters.get("outputDimensionality"))

    def reply(self, model: str, texts: list[str], vectors: list[list[float]]) -> Any:
        return {"predictions": [{"embeddings": {"values": v, "statistics": {"token_count": tokens_for(t),
                                                                            "truncated": False}}}
                                for t, v in zip(texts, vectors, strict=True)],
                "metadata": {"billableCharacterCount": sum(len(t) for t in texts)}}


class CohereEmbeddings(EmbeddingFormat):
    """Cohere ``/v2/embed``: ``texts``, a required ``input_type``, ``embedding_types``."""

    name = "cohere-embeddings"
    path = re.compile(r"/v2/embed$")
    max_batch = 96
    INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")

    def request(self, body: dict[str, Any], match: re.Match[str]) -> tuple[str, list[str], int]:
        texts = _texts(body.get("texts"), "texts")
        if len(texts) > self.max_batch:
            raise WireError(f"invalid request: texts must have at most {self.max_batch} entries")
        if body.get("input_type") not in self.INPUT_TYPES:
            raise WireError(f"input_type must be one of {', '.join(self.INPUT_TYPES)}")
        if body.get("embedding_types") != ["float"]:
            raise WireError("embedding_types must be [\"float\"] here")
        return str(body.get("model")), texts, _dimensions(body.get("output_dimension"))

    def reply(self, model: str, texts: list[str], vectors: list[list[float]]) -> Any:
        return {"id": "local-embed", "response_type": "embeddings_by_type", "embeddings": {"float": vectors},
                "texts": texts, "meta": {"api_version": {"version": "2"},
                                         "billed_units": {"input_tokens": float(sum(tokens_for(t) for t in texts))}}}

    def error_body(self, status: int, message: str) -> Any:
        return {"id": "local-error", "message": message}


class OllamaEmbeddings(EmbeddingFormat):
    """Ollama ``/api/embed``: ``input`` (a string or a list), ``dimensions``."""

    name = "ollama-embeddings"
    path = re.compile(r"/api/embed$")
    needs_key = False  # Ollama's own API has no keys

    def request(self, body: dict[str, Any], match: re.Match[str]) -> tuple[str, list[str], int]:
        value = body.get("input")
        texts = [value] if isinstance(value, str) else _texts(value, "input")
        return str(body.get("model")), texts, _dimensions(body.get("dimensions"))

    def reply(self, model: str, texts: list[str], vectors: list[list[float]]) -> Any:
        return {"model": model, "embeddings": vectors, "total_duration": 1_000_000, "load_duration": 100_000,
                "prompt_eval_count": sum(tokens_for(t) for t in texts)}

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}


class FeatureExtraction(EmbeddingFormat):
    """Hugging Face ``models/<repo>/pipeline/feature-extraction``: ``inputs``; the reply is a bare array."""

    name = "hf-feature-extraction"
    path = re.compile(r"/models/(?P<model>.+)/pipeline/feature-extraction$")

    def request(self, body: dict[str, Any], match: re.Match[str]) -> tuple[str, list[str], int]:
        if "/" not in match["model"]:
            raise WireError("the model must be a Hub repo id (owner/name) in the path")
        return match["model"], _texts(body.get("inputs"), "inputs"), DEFAULT_DIMENSIONS

    def reply(self, model: str, texts: list[str], vectors: list[list[float]]) -> Any:
        return vectors

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}


EMBEDDING_FORMATS: dict[str, EmbeddingFormat] = {f.name: f for f in (
    GeminiEmbeddings(), VertexEmbeddings(), CohereEmbeddings(), OllamaEmbeddings(), FeatureExtraction(),
    OpenAIEmbeddings())}


def route_embeddings(path: str) -> tuple[EmbeddingFormat, re.Match[str]] | None:
    """The embeddings format that answers a path, by its ending; ``None`` when none does."""
    path = path.rstrip("/") or "/"
    for fmt in EMBEDDING_FORMATS.values():
        if (match := fmt.matches(path)) is not None:
            return fmt, match
    return None
