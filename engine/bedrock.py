"""AWS Bedrock through boto3's ``bedrock-runtime`` client: the Converse and ConverseStream APIs.

``providers.d/bedrock.yaml`` names this class; the engine gives it everything else (registry,
settings, model aliases, pricing, unified responses, latency). boto3 is imported on first call,
never at ``import engine``.

- Credentials: the standard AWS chain (env variables, ``AWS_PROFILE`` or the ``profile`` setting,
  SSO, container and instance roles; keys in the engine's ``.env`` file count too), or a Bedrock
  API key in ``AWS_BEARER_TOKEN_BEDROCK``. Region: ``GENAI_BEDROCK_REGION``, else ``AWS_REGION`` /
  ``AWS_DEFAULT_REGION``, else the profile's. ``endpoint_url`` overrides the endpoint.
- Retries: botocore's own are off (``total_max_attempts: 1``) so that one policy applies to every
  provider: the engine's ``max_retries`` and backoff delays, on 408/409/429/5xx, timeouts and
  connection errors. A stream is retried only until its response starts.
- boto3 blocks: each call, and each read of a stream's next event, runs in a worker thread. A
  stream closed before its end closes the HTTP response.
- Messages are read by `engine.shapes.normalize`: tool calls become ``toolUse`` blocks, ``role: tool``
  results ``toolResult`` blocks in one user turn, images and documents (data only; Converse takes no
  URLs) ``image`` / ``document`` blocks of raw bytes, replayed thinking ``reasoningContent`` blocks.
- Tools: ``toolConfig``; Converse has no ``none`` choice, so ``tool_choice='none'`` sends no tools,
  unless the conversation holds tool blocks (Converse then demands ``toolConfig``): the tools are
  sent without a choice.
- JSON output (``output_schema``): the ``json_output`` option of the provider or model chooses
  ``output_config`` (Bedrock's structured output, ``outputConfig.textFormat``; the answer is text)
  or ``tool`` (a forced tool; the answer is the tool's input as JSON text, never a tool call; with the
  caller's tools too, the model must call one of them or the answer tool).
- Usage: Bedrock's ``inputTokens`` leaves out cache reads and writes; results count them in. One-hour
  cache writes (``cacheDetails`` with ``ttl: 1h``) are counted apart, as they cost more.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .backend import Backend, BackendChunk, BackendEmbedding, BackendResult, ToolCallPiece
from .errors import BackendLoadError, ConfigError, ErrorKind, InvalidRequestError, ProviderError, kind_for_status
from .pricing import Usage
from .render import schema_name
from .retry import RetryPolicy, retry_after
from .shapes import SYSTEM_ROLES, Part, choice_kind, normalize, stable_call_id, tool_values
from .spec import env_name
from .types import EmbeddingRequest, ToolCall

if TYPE_CHECKING:
    from .settings import Settings
    from .spec import ProviderSpec
    from .types import CompletionRequest

log = logging.getLogger("engine")

INSTALL_HINT = "the bedrock provider needs boto3: pip install 'genai-engine[bedrock]'"

# Error codes as Bedrock names them, lower-cased: HTTP errors say "ThrottlingException",
# stream exception frames say "throttlingException".
ERROR_KINDS: dict[str, ErrorKind] = {
    "throttlingexception": ErrorKind.RATE_LIMIT,
    "servicequotaexceededexception": ErrorKind.RATE_LIMIT,
    "validationexception": ErrorKind.INVALID_REQUEST,
    "accessdeniedexception": ErrorKind.AUTH,
    "unrecognizedclientexception": ErrorKind.AUTH,
    "invalidsignatureexception": ErrorKind.AUTH,
    "expiredtokenexception": ErrorKind.AUTH,
    "resourcenotfoundexception": ErrorKind.NOT_FOUND,
    "modeltimeoutexception": ErrorKind.TIMEOUT,
    "modelnotreadyexception": ErrorKind.SERVER,
    "serviceunavailableexception": ErrorKind.SERVER,
    "internalserverexception": ErrorKind.SERVER,
    "modelerrorexception": ErrorKind.SERVER,
    "modelstreamerrorexception": ErrorKind.SERVER,
}


# -- request ---------------------------------------------------------------
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "text/html": "html", "text/plain": "txt", "text/markdown": "md",
    "application/msword": "doc", "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
_UNSAMPLED = ("seed", "presence_penalty", "frequency_penalty", "user")  # no Converse field takes these


def _invalid(message: str) -> ProviderError:
    return ProviderError(f"Bedrock: {message}", ErrorKind.INVALID_REQUEST)


def _raw_bytes(data: str | bytes, what: str) -> bytes:
    """Base64 data as raw bytes: boto3 base64-encodes blobs itself, so encoded text would be sent twice encoded."""
    if isinstance(data, bytes):
        return data
    try:
        return base64.b64decode(data)
    except ValueError as exc:
        raise _invalid(f"{what} is not valid base64 ({exc})") from None


def tool_use_id(call_id: str) -> str:
    """A call id as Converse takes it (``[a-zA-Z0-9_.:-]``, at most 64); others (from another provider's
    conversation) map to a stable one, the same for the call and its result."""
    if _TOOL_USE_ID.fullmatch(call_id):
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:40]


def _document_format(values: Mapping[str, Any]) -> str:
    """Converse's format name; the filename's extension first, since a bare base64 ``file_data`` has no media
    type (shapes then assumes PDF)."""
    extension = (values.get("filename") or "").rsplit(".", 1)[-1].lower()
    fmt = extension if extension in DOCUMENT_FORMATS.values() else DOCUMENT_FORMATS.get(values["media_type"])
    if fmt is None:
        raise _invalid(f"documents must be pdf, csv, doc, docx, xls, xlsx, html, txt or md, "
                       f"got {values['media_type']!r}")
    return fmt


def part_block(part: Part) -> dict[str, Any]:
    """One typed part of a unified message (see `engine.shapes.normalize`) as a Converse content block."""
    kind, values = part.kind, part.values
    if kind == "text":
        return {"text": values["text"]}
    if kind == "native":  # a Converse block given as is: cachePoint, guardContent, an image from S3, ...
        block: dict[str, Any] = values["part"]
        if "type" in block:
            raise _invalid(f"unsupported content part {block['type']!r}; pass text, image_url or file parts, "
                           "or Converse content blocks (e.g. {'cachePoint': {'type': 'default'}})")
        return block
    if kind == "image":
        fmt = IMAGE_FORMATS.get(values["media_type"])
        if fmt is None:
            raise _invalid(f"images must be png, jpeg, gif or webp, got {values['media_type']!r}")
        return {"image": {"format": fmt, "source": {"bytes": _raw_bytes(values["data"], "image data")}}}
    if kind == "document":
        # values["name"] is already cleaned to what Converse allows (no dots: not the raw filename).
        return {"document": {"format": _document_format(values), "name": values["name"],
                             "source": {"bytes": _raw_bytes(values["data"], "document data")}}}
    if kind == "tool_call":
        return {"toolUse": {"toolUseId": tool_use_id(values["id"]), "name": values["name"], "input": values["args"]}}
    if kind == "tool_result":
        value = values["value"]
        content = {"json": value} if isinstance(value, dict) else {"text": values["content"]}
        result: dict[str, Any] = {"toolUseId": tool_use_id(values["id"]), "content": [content]}
        if values["is_error"]:  # only sent when set: status is a Claude and Nova field
            result["status"] = "error"
        return {"toolResult": result}
    if kind == "reasoning":
        text: dict[str, Any] = {"text": values["text"] or ""}
        if values["signature"] is not None:
            text["signature"] = values["signature"]
        return {"reasoningContent": {"reasoningText": text}}
    if kind == "redacted_reasoning":
        return {"reasoningContent": {"redactedContent": _raw_bytes(values["redacted"], "redacted reasoning")}}
    url = values.get("url")
    raise _invalid(f"Converse takes images and documents as data (a data: URL, or file_data), not by URL ({url})")


def converse_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system, messages)`` for Converse: tool results become user turns, and consecutive turns of one role
    are merged (Converse alternates user and assistant), with tool results first."""
    try:
        turns = normalize(messages)
    except InvalidRequestError as exc:
        raise _invalid(str(exc)) from None
    system: list[dict[str, Any]] = []
    written: list[dict[str, Any]] = []
    for turn in turns:
        blocks = [part_block(part) for part in (*turn.parts, *turn.calls)]  # reasoning comes first in parts
        role = "user" if turn.role == "tool" else turn.role
        if role in SYSTEM_ROLES:
            system.extend(blocks)
        elif role not in ("user", "assistant"):
            raise _invalid(f"Converse has no {role!r} role (use system, user, assistant or tool)")
        elif written and written[-1]["role"] == role:
            written[-1]["content"].extend(blocks)
        else:
            written.append({"role": role, "content": blocks})
    for message in written:  # a user turn answering tool calls must start with the results
        message["content"].sort(key=lambda block: "toolResult" not in block)
    return system, written


def content_blocks(content: Any) -> list[dict[str, Any]]:
    """A unified message's content as Converse content blocks; a part without ``type`` is taken to be a
    Converse block already (``cachePoint``, ``image``, ...) and passed through."""
    if content is None:
        return []
    text = content if isinstance(content, str | list) else str(content)
    return converse_messages([{"role": "user", "content": text}])[1][0]["content"]


def tool_spec(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A unified function tool as a Converse ``toolSpec``."""
    values = tool_values(tool)
    spec: dict[str, Any] = {"name": values["name"], "inputSchema": {"json": values["parameters"]}}
    if values["description"]:
        spec["description"] = values["description"]
    if values["strict"] is not None:
        spec["strict"] = values["strict"]
    return spec


def answer_tool(schema: dict[str, Any]) -> dict[str, Any]:
    """The ``toolSpec`` whose input is the answer, in forced-tool JSON mode."""
    return {"name": schema_name(schema), "description": "Give the answer as this tool's input.",
            "inputSchema": {"json": schema}}


def tool_config(request: CompletionRequest, messages: list[dict[str, Any]],
                answer: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``toolConfig`` for the request's tools and ``tool_choice`` (and ``answer``, the forced-tool JSON mode's
    tool), or ``None``. Converse has no ``none`` choice: tools are left out instead, unless the conversation
    holds tool blocks, which Converse refuses without a ``toolConfig``."""
    try:
        kind, name = choice_kind(request.tool_choice if request.tool_choice is not None else "auto")
        offered = [{"toolSpec": tool_spec(tool)} for tool in request.tools or ()]
    except InvalidRequestError as exc:
        raise _invalid(str(exc)) from None
    history = any("toolUse" in block or "toolResult" in block for m in messages for block in m["content"])
    if history and not offered:
        raise _invalid("the conversation holds tool calls or results, and Converse then needs the tool definitions: "
                       "pass tools=[...] (with tool_choice='none' to keep the model from calling them)")
    if kind == "none" and not history:
        offered = []
    names = [tool["toolSpec"]["name"] for tool in offered]
    if answer is not None and answer["name"] in names:
        raise _invalid(f"a tool is named {answer['name']!r} like the output_schema's answer tool; rename one")
    if kind == "named" and name not in names:
        raise _invalid(f"tool_choice names {name!r}, which is not among the tools ({', '.join(names) or 'none'})")
    if kind == "required" and not offered:
        raise _invalid("tool_choice 'required' needs tools")
    tools = offered + ([{"toolSpec": answer}] if answer is not None else [])
    if not tools:
        return None
    choice: dict[str, Any] | None = None
    if kind == "named":
        choice = {"tool": {"name": name}}
    elif answer is not None:  # some tool must be called: one of the caller's, or the answer tool
        choice = {"any": {}} if offered and kind != "none" else {"tool": {"name": answer["name"]}}
    elif kind == "required":
        choice = {"any": {}}
    elif kind == "auto" and request.tool_choice is not None:
        choice = {"auto": {}}
    config: dict[str, Any] = {"tools": tools}
    if choice is not None:
        config["toolChoice"] = choice
    return config


def output_config(schema: dict[str, Any]) -> dict[str, Any]:
    """``outputConfig`` for Bedrock's structured output; the schema is a JSON *string*, unlike a tool's."""
    structure = {"jsonSchema": {"schema": json.dumps(schema), "name": schema_name(schema)}}
    return {"textFormat": {"type": "json_schema", "structure": structure}}


def converse_params(request: CompletionRequest, model: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``converse`` / ``converse_stream`` for one request.

    ``stop`` and ``top_p`` go into ``inferenceConfig``; ``extra`` keys are Converse request fields
    (``additionalModelRequestFields``, ``guardrailConfig``, ...), except ``top_p``, ``stop`` and an
    ``inferenceConfig`` dict, which still go into ``inferenceConfig`` as they did before the first-class fields.
    ``parallel_tool_calls`` is not sent: Converse has no switch for it.
    """
    if unsampled := [name for name in _UNSAMPLED if getattr(request, name) is not None]:
        raise _invalid(f"Converse takes no {', '.join(unsampled)}; model-specific fields go in "
                       "extra={'additionalModelRequestFields': {...}}")
    system, messages = converse_messages(request.messages)
    extra = dict(request.extra)
    inference: dict[str, Any] = {"maxTokens": request.max_tokens}
    if options.get("temperature", True):
        inference["temperature"] = request.temperature
    top_p, stop = extra.pop("top_p", None), extra.pop("stop", None)
    inference["topP"] = request.top_p if request.top_p is not None else top_p
    stop = request.stop if request.stop is not None else stop
    inference["stopSequences"] = [stop] if isinstance(stop, str) else stop
    inference.update(extra.pop("inferenceConfig", None) or {})
    params: dict[str, Any] = {"modelId": model, "messages": messages}
    if system:
        params["system"] = system
    if inference := {k: v for k, v in inference.items() if v is not None}:
        params["inferenceConfig"] = inference
    schema = request.output_schema
    forced = schema is not None and options.get("json_output", "output_config") == "tool"
    if config := tool_config(request, messages, answer_tool(schema) if schema is not None and forced else None):
        params["toolConfig"] = config
    if schema is not None and not forced:
        params["outputConfig"] = output_config(schema)
    params.update(extra)
    return params


# -- response --------------------------------------------------------------
def unified_usage(usage: Mapping[str, Any] | None) -> Usage | None:
    """Bedrock's token usage with cache reads and writes counted in the input."""
    if not usage:
        return None
    read, written, fresh = (usage.get(k) for k in ("cacheReadInputTokens", "cacheWriteInputTokens", "inputTokens"))
    total = None if fresh is None else fresh + (read or 0) + (written or 0)
    # Writes by cache lifetime: [{"ttl": "5m" | "1h", "inputTokens": n}]; one-hour writes cost more.
    details = usage.get("cacheDetails")
    hour = [d.get("inputTokens") for d in details if isinstance(d, Mapping) and d.get("ttl") == "1h"] \
        if isinstance(details, list) else []
    long_writes = sum(n for n in hour if type(n) is int) if hour else None
    return Usage(input_tokens=total, output_tokens=usage.get("outputTokens"), cached_input_tokens=read,
                 cache_write_tokens=written, cache_write_1h_tokens=long_writes)


def answer_name(request: CompletionRequest, options: Mapping[str, Any]) -> str | None:
    """The answer tool's name in forced-tool JSON mode, else ``None``."""
    if request.output_schema is not None and options.get("json_output") == "tool":
        return schema_name(request.output_schema)
    return None


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def content_text(blocks: list[Mapping[str, Any]], answer: str | None = None) -> str:
    """The answer: text blocks joined; in forced-tool JSON mode (``answer`` names the tool) that tool's input as
    JSON text, or the text when the model did not call it. Reasoning blocks are left out."""
    uses = [b["toolUse"] for b in blocks if isinstance(b.get("toolUse"), Mapping)]
    inputs = [_json_text(u["input"]) for u in uses if answer is not None and u.get("name") == answer
              and u.get("input") is not None]
    return "".join(inputs) or "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))


def tool_calls(blocks: list[Mapping[str, Any]], answer: str | None = None) -> list[ToolCall]:
    """The toolUse blocks as unified calls (the forced-tool JSON mode's answer tool is the reply, not a call)."""
    uses = [b["toolUse"] for b in blocks if isinstance(b.get("toolUse"), Mapping)]
    return [ToolCall(id=u.get("toolUseId") or stable_call_id(u["name"], _json_text(u.get("input") or {}), i),
                     name=u["name"], arguments=_json_text(u.get("input") or {}))
            for i, u in enumerate(uses) if isinstance(u.get("name"), str) and u["name"] != answer]


def thought(text: str | None, signature: str | None, redacted: bytes | str | None) -> dict[str, Any] | None:
    """A reasoning block as the engine keeps it to replay: ``{text, signature}``, or ``{redacted}`` (base64)."""
    if redacted:
        return {"redacted": redacted if isinstance(redacted, str) else base64.b64encode(redacted).decode()}
    if text is None:
        return None
    return {"text": text, "signature": signature} if signature else {"text": text}


def thinking_blocks(blocks: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The reasoning blocks, with their signatures or redacted data, to replay on the next turn."""
    found = []
    for block in blocks:
        content = block.get("reasoningContent")
        if isinstance(content, Mapping):
            reasoning = content.get("reasoningText") or {}
            if kept := thought(reasoning.get("text"), reasoning.get("signature"), content.get("redactedContent")):
                found.append(kept)
    return found


def reasoning_text(blocks: list[Mapping[str, Any]]) -> str | None:
    """The reasoning blocks' text joined, if the model returned any."""
    texts = [((b.get("reasoningContent") or {}).get("reasoningText") or {}).get("text") for b in blocks]
    return "".join(t for t in texts if isinstance(t, str)) or None


def finish_reason(native: str | None, answer: str | None, calls: int) -> str | None:
    """Bedrock's stop reason; in forced-tool JSON mode a ``tool_use`` stop with no other call is a finished turn
    (the answer tool's input is the reply), so it unifies to ``stop`` rather than ``tool_calls``."""
    return "end_turn" if answer is not None and native == "tool_use" and not calls else native


class StreamReader:
    """ConverseStream events as backend chunks: text, tool-call pieces by block index, and reasoning blocks
    assembled until their block stops. In forced-tool JSON mode the answer tool's input is the text."""

    def __init__(self, answer: str | None = None) -> None:
        self.answer = answer
        self.answer_blocks: set[int] = set()
        self.calls = 0
        self.held: list[str] = []  # forced-tool JSON mode: text, the reply only if the model skips the tool
        self.thoughts: dict[int, dict[str, Any]] = {}
        self.stopped = False

    def read(self, event: Mapping[str, Any]) -> list[BackendChunk]:
        """The chunks of one event (the first carries the raw event)."""
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool = (start.get("start") or {}).get("toolUse")
            if isinstance(tool, Mapping):
                index = start.get("contentBlockIndex", 0)
                if self.answer is not None and tool.get("name") == self.answer:
                    self.answer_blocks.add(index)
                else:
                    self.calls += 1
                    piece = ToolCallPiece(index, id=tool.get("toolUseId"), name=tool.get("name"))
                    return [BackendChunk(raw=event, tool_call=piece)]
        elif "contentBlockDelta" in event:
            return [self._delta(event)]
        elif "contentBlockStop" in event:
            done = self._thought(event["contentBlockStop"].get("contentBlockIndex", 0))
            return [BackendChunk(raw=event, thinking=[done] if done else None)]
        elif "messageStop" in event:
            self.stopped = True
            native = finish_reason(event["messageStop"].get("stopReason"), self.answer, self.calls)
            held = "".join(self.held) if not self.answer_blocks else None
            left = [done for index in list(self.thoughts) if (done := self._thought(index))]  # never stopped
            return [BackendChunk(held or None, finish_reason=native, raw=event, thinking=left or None)]
        elif "metadata" in event:
            return [BackendChunk(usage=unified_usage(event["metadata"].get("usage")), raw=event)]
        return [BackendChunk(raw=event)]

    def _delta(self, event: Mapping[str, Any]) -> BackendChunk:
        block = event["contentBlockDelta"]
        index, delta = block.get("contentBlockIndex", 0), block.get("delta") or {}
        if isinstance(text := delta.get("text"), str):
            if self.answer is None:
                return BackendChunk(text, raw=event)
            self.held.append(text)  # Nova writes a preamble before the forced tool: not the answer
        elif isinstance(piece := (delta.get("toolUse") or {}).get("input"), str):
            if index in self.answer_blocks:
                return BackendChunk(piece, raw=event)
            return BackendChunk(raw=event, tool_call=ToolCallPiece(index, arguments=piece))
        elif isinstance(reasoning := delta.get("reasoningContent"), Mapping):
            kept = self.thoughts.setdefault(index, {"text": [], "signature": None, "redacted": b""})
            text = reasoning.get("text")
            if isinstance(text, str):
                kept["text"].append(text)
            if isinstance(reasoning.get("signature"), str):
                kept["signature"] = reasoning["signature"]
            if isinstance(reasoning.get("redactedContent"), bytes):
                kept["redacted"] += reasoning["redactedContent"]
            return BackendChunk(raw=event, reasoning=text if isinstance(text, str) else None)
        return BackendChunk(raw=event)

    def _thought(self, index: int) -> dict[str, Any] | None:
        kept = self.thoughts.pop(index, None)
        if kept is None:
            return None
        return thought("".join(kept["text"]), kept["signature"], kept["redacted"])


def embedding_family(model: str) -> str | None:
    """``titan`` or ``cohere`` for the embedding models Bedrock serves through InvokeModel (a cross-region
    inference profile such as ``us.cohere.embed-v4:0`` included), else ``None``."""
    base = model.split(".", 1)[1] if model.split(".", 1)[0] in ("us", "eu", "apac", "global") else model
    if base.startswith("amazon.titan-embed-text"):
        return "titan"
    if base.startswith("cohere.embed-"):
        return "cohere"
    return None


_COHERE_INPUT_TYPES = {"query": "search_query", "document": "search_document", "classification": "classification",
                       "clustering": "clustering"}


def embedding_body(family: str | None, request: EmbeddingRequest, inputs: list[str]) -> dict[str, Any]:
    """The InvokeModel body of one batch: Titan's one ``inputText``, or Cohere's ``texts``."""
    if family == "titan":
        body: dict[str, Any] = {"inputText": inputs[0], "normalize": True}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
    else:
        body = {"texts": inputs, "input_type": _COHERE_INPUT_TYPES.get(request.input_type or "", "search_document"),
                "embedding_types": ["float"]}
        if request.dimensions is not None:
            body["output_dimension"] = request.dimensions
    return {**body, **request.extra}


def embedding_reply(family: str | None, payload: Any,
                    headers: Mapping[str, str]) -> tuple[list[list[float]], int | None]:
    """The vectors and input token count of an InvokeModel reply (Cohere's count is only in a header)."""
    if not isinstance(payload, dict):
        raise ProviderError(f"invalid embeddings reply: {str(payload)[:200]}", ErrorKind.INVALID_RESPONSE)
    vectors: Any
    if family == "titan":
        vectors, tokens = [payload.get("embedding")], payload.get("inputTextTokenCount")
    else:
        found = payload.get("embeddings")
        vectors = found.get("float") if isinstance(found, dict) else found
        tokens = {k.lower(): v for k, v in headers.items()}.get("x-amzn-bedrock-input-token-count")
    if not isinstance(vectors, list) or not all(isinstance(v, list) and v for v in vectors):
        raise ProviderError("invalid embeddings reply: no vectors", ErrorKind.INVALID_RESPONSE)
    count = int(tokens) if isinstance(tokens, int | str) and str(tokens).isdigit() else None
    return [[float(x) for x in v] for v in vectors], count


class BedrockBackend(Backend):
    """Converse / ConverseStream through a lazily created boto3 ``bedrock-runtime`` client."""

    def __init__(self, spec: ProviderSpec, settings: Settings, config: dict[str, str]) -> None:
        super().__init__(spec, settings, config)
        if importlib.util.find_spec("boto3") is None:
            raise BackendLoadError(INSTALL_HINT)
        self.policy = RetryPolicy(settings.max_retries, settings.retry_initial_delay, settings.retry_max_delay)
        self._client: Any = None
        self._lock = threading.Lock()

    # -- client --------------------------------------------------------------
    def _new_client(self) -> Any:
        try:
            import boto3  # here, not at module level: importing boto3 takes ~0.1 s
        except ImportError as exc:
            raise BackendLoadError(INSTALL_HINT) from exc
        from botocore.config import Config
        from botocore.exceptions import NoRegionError, ProfileNotFound

        config = Config(
            connect_timeout=self.settings.connect_timeout, read_timeout=self.settings.timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},  # the engine retries, see the module doc
            max_pool_connections=50, user_agent_extra="genai-engine",
        )
        try:
            session = boto3.Session(profile_name=self.config.get("profile"), **self._dotenv_keys())
            return session.client("bedrock-runtime", region_name=self.config.get("region"),
                                  endpoint_url=self.config.get("endpoint_url"), config=config)
        except NoRegionError:
            name = self.spec.name
            raise ConfigError(
                f"no AWS region for provider {name!r}: set {env_name(name, 'REGION')} or AWS_REGION, "
                f"or Settings(provider_config={{{name!r}: {{'region': 'us-east-1'}}}})") from None
        except ProfileNotFound as exc:
            raise ConfigError(f"provider {self.spec.name!r}: {exc}") from None

    def _dotenv_keys(self) -> dict[str, str]:
        """Keys from the engine's ``.env`` file, which boto3 does not read itself."""
        if self.config.get("profile") or os.environ.get("AWS_ACCESS_KEY_ID"):
            return {}
        key, secret = self.settings.env("AWS_ACCESS_KEY_ID"), self.settings.env("AWS_SECRET_ACCESS_KEY")
        if not (key and secret):
            return {}
        keys = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        if token := self.settings.env("AWS_SESSION_TOKEN"):
            keys["aws_session_token"] = token
        return keys

    def _client_now(self) -> Any:
        with self._lock:  # boto3 sessions are not thread-safe; create the client once
            if self._client is None:
                self._client = self._new_client()
            return self._client

    async def client(self) -> Any:
        """The boto3 client, created on first use in a worker thread (it reads files)."""
        return self._client if self._client is not None else await asyncio.to_thread(self._client_now)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- errors --------------------------------------------------------------
    def error(self, exc: BaseException) -> BaseException:
        """A `ProviderError` for a boto3/botocore/urllib3 failure; raises `ConfigError` for missing setup."""
        from botocore import exceptions as bx
        from urllib3 import exceptions as ux

        if isinstance(exc, ProviderError | ConfigError):
            return exc
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            name = self.spec.name
            raise ConfigError(
                f"no AWS credentials for provider {name!r} ({exc}): set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary keys), or a profile "
                f"(AWS_PROFILE or {env_name(name, 'PROFILE')}), or run with an IAM role; "
                "a Bedrock API key goes in AWS_BEARER_TOKEN_BEDROCK") from exc
        if isinstance(exc, bx.ClientError):
            return self._client_error(exc)
        if isinstance(exc, bx.ReadTimeoutError | bx.ConnectTimeoutError | ux.ReadTimeoutError):
            return ProviderError(f"timed out: {exc}", ErrorKind.TIMEOUT)
        if isinstance(exc, bx.HTTPClientError | ux.HTTPError):
            return ProviderError(f"connection failed: {exc}", ErrorKind.CONNECTION)
        if isinstance(exc, bx.ParamValidationError):
            return ProviderError(str(exc), ErrorKind.INVALID_REQUEST)
        if isinstance(exc, bx.CredentialRetrievalError | bx.TokenRetrievalError | bx.SSOError):
            return ProviderError(f"AWS credentials: {exc}", ErrorKind.AUTH)
        return exc

    @staticmethod
    def _client_error(exc: Any) -> ProviderError:
        error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
        code, message = str(error.get("Code") or ""), str(error.get("Message") or exc)
        status = meta.get("HTTPStatusCode")  # none for a stream's exception frame
        kind = ERROR_KINDS.get(code.lower()) or (kind_for_status(status) if status else ErrorKind.SERVER)
        text = (f"HTTP {status}: " if status else "") + message + (f" ({code})" if code else "")
        return ProviderError(text, kind, status_code=status, retry_after=retry_after(meta.get("HTTPHeaders") or {}))

    # -- calls ---------------------------------------------------------------
    async def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """One API call with the engine's retry policy."""
        method = getattr(await self.client(), operation)

        async def attempt() -> dict[str, Any]:
            try:
                response: dict[str, Any] = await asyncio.to_thread(method, **params)
                return response
            except Exception as exc:
                error = self.error(exc)
                if error is exc:
                    raise
                raise error from exc

        return await self.policy.run(attempt, f"bedrock {operation}")

    async def complete(self, request: CompletionRequest, model: str) -> BackendResult:
        options = self.spec.options_for(model)
        answer = answer_name(request, options)
        response = await self._call("converse", converse_params(request, model, options))
        blocks = ((response.get("output") or {}).get("message") or {}).get("content") or []
        calls = tool_calls(blocks, answer)
        return BackendResult(content=content_text(blocks, answer), reasoning=reasoning_text(blocks),
                             finish_reason=finish_reason(response.get("stopReason"), answer, len(calls)),
                             usage=unified_usage(response.get("usage")) or Usage(), raw=response,
                             tool_calls=calls, thinking=thinking_blocks(blocks))

    # -- embeddings (InvokeModel) --------------------------------------------
    def embedding_batch(self, model: str) -> int:
        """Titan takes one text a call; Cohere's embed models on Bedrock take 96."""
        family = embedding_family(model)
        return 1 if family == "titan" else 96 if family == "cohere" else 0

    async def embed(self, request: EmbeddingRequest, model: str, inputs: list[str]) -> BackendEmbedding:
        body = embedding_body(embedding_family(model), request, inputs)
        response = await self._call("invoke_model", {"modelId": model, "body": json.dumps(body),
                                                     "contentType": "application/json",
                                                     "accept": "application/json"})
        payload = json.loads(await asyncio.to_thread(response["body"].read))
        headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
        vectors, tokens = embedding_reply(embedding_family(model), payload, headers)
        return BackendEmbedding(vectors, model, tokens, payload)

    async def _next(self, events: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(next, events, None)
        except Exception as exc:
            error = self.error(exc)
            if error is exc:
                raise
            raise error from exc

    async def stream(self, request: CompletionRequest, model: str) -> AsyncIterator[BackendChunk]:
        options = self.spec.options_for(model)
        reader = StreamReader(answer_name(request, options))
        response = await self._call("converse_stream", converse_params(request, model, options))
        body = response["stream"]
        events = iter(body)
        ended = False
        try:
            while (event := await self._next(events)) is not None:
                for chunk in reader.read(event):
                    yield chunk
            ended = True
            if not reader.stopped:
                raise ProviderError("stream ended before messageStop (cut off)", ErrorKind.CONNECTION)
        finally:
            if not ended:
                body.close()  # stopped early or failed: drop the connection instead of reading on
