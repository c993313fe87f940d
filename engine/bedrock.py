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
- JSON output (``output_schema``): the ``json_output`` option of the provider or model chooses
  ``output_config`` (Bedrock's structured output, ``outputConfig.textFormat``; the answer is text)
  or ``tool`` (a forced tool; the answer is the tool's input as JSON text).
- Usage: Bedrock's ``inputTokens`` leaves out cache reads and writes; results count them in.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .backend import Backend, BackendChunk, BackendResult
from .errors import BackendLoadError, ConfigError, ErrorKind, ProviderError, kind_for_status
from .pricing import Usage
from .render import schema_name
from .retry import RetryPolicy, retry_after
from .spec import env_name

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
def content_blocks(content: Any) -> list[dict[str, Any]]:
    """A unified message's content as Converse content blocks.

    Text parts (``{"type": "text"}``) become text blocks; a part without ``type`` is taken to be
    a Converse block already (``cachePoint``, ``image``, ...) and passed through.
    """
    if content is None:
        return []
    if not isinstance(content, list):
        return [{"text": content if isinstance(content, str) else str(content)}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            blocks.append({"text": part})
        elif isinstance(part, Mapping) and part.get("type") == "text":
            blocks.append({"text": part.get("text", "")})
        elif isinstance(part, Mapping) and "type" not in part:
            blocks.append(dict(part))
        else:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise ProviderError(f"Bedrock: unsupported content part {kind!r}; pass text parts or Converse "
                                "content blocks (e.g. {'cachePoint': {'type': 'default'}})",
                                ErrorKind.INVALID_REQUEST)
    return blocks


def converse_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system, messages)`` for Converse; consecutive turns of one role are merged (Converse alternates)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role, blocks = message["role"], content_blocks(message.get("content"))
        if role in ("system", "developer"):
            system.extend(blocks)
        elif role not in ("user", "assistant"):
            raise ProviderError(f"Bedrock Converse has no {role!r} role (use system, user or assistant)",
                                ErrorKind.INVALID_REQUEST)
        elif turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def json_output_params(schema: dict[str, Any], mode: str) -> dict[str, Any]:
    """The request fields that make the answer JSON matching ``schema``."""
    name = schema_name(schema)
    if mode == "tool":
        tool = {"name": name, "description": "Give the answer as this tool's input.", "inputSchema": {"json": schema}}
        return {"toolConfig": {"tools": [{"toolSpec": tool}], "toolChoice": {"tool": {"name": name}}}}
    # The schema is a JSON *string* here, unlike a tool's inputSchema.
    structure = {"jsonSchema": {"schema": json.dumps(schema), "name": name}}
    return {"outputConfig": {"textFormat": {"type": "json_schema", "structure": structure}}}


def converse_params(request: CompletionRequest, model: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``converse`` / ``converse_stream`` for one request.

    ``extra`` keys are Converse request fields (``additionalModelRequestFields``, ``guardrailConfig``,
    ...); ``top_p``, ``stop`` and an ``inferenceConfig`` dict go into ``inferenceConfig``.
    """
    system, messages = converse_messages(request.messages)
    extra = dict(request.extra)
    inference: dict[str, Any] = {"maxTokens": request.max_tokens}
    if options.get("temperature", True):
        inference["temperature"] = request.temperature
    if "top_p" in extra:
        inference["topP"] = extra.pop("top_p")
    if "stop" in extra:
        stop = extra.pop("stop")
        inference["stopSequences"] = [stop] if isinstance(stop, str) else stop
    inference.update(extra.pop("inferenceConfig", None) or {})
    params: dict[str, Any] = {"modelId": model, "messages": messages}
    if system:
        params["system"] = system
    if inference := {k: v for k, v in inference.items() if v is not None}:
        params["inferenceConfig"] = inference
    if request.output_schema is not None:
        params.update(json_output_params(request.output_schema, options.get("json_output", "output_config")))
    params.update(extra)
    return params


# -- response --------------------------------------------------------------
def unified_usage(usage: Mapping[str, Any] | None) -> Usage | None:
    """Bedrock's token usage with cache reads and writes counted in the input."""
    if not usage:
        return None
    read, written, fresh = (usage.get(k) for k in ("cacheReadInputTokens", "cacheWriteInputTokens", "inputTokens"))
    total = None if fresh is None else fresh + (read or 0) + (written or 0)
    return Usage(input_tokens=total, output_tokens=usage.get("outputTokens"), cached_input_tokens=read,
                 cache_write_tokens=written)


def content_text(blocks: list[Mapping[str, Any]], tool_json: bool) -> str:
    """The answer: text blocks joined, or tool inputs as JSON text (first in forced-tool JSON mode).

    Reasoning blocks are left out.
    """
    texts = [b["text"] for b in blocks if isinstance(b.get("text"), str)]
    tools = [b["toolUse"].get("input") for b in blocks if isinstance(b.get("toolUse"), Mapping)]
    inputs = [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in tools if v is not None]
    first, second = (inputs, texts) if tool_json else (texts, inputs)
    return "".join(first or second)


def reasoning_text(blocks: list[Mapping[str, Any]]) -> str | None:
    """The reasoning blocks' text joined, if the model returned any."""
    texts = [((b.get("reasoningContent") or {}).get("reasoningText") or {}).get("text") for b in blocks]
    return "".join(t for t in texts if isinstance(t, str)) or None


def _tool_json(request: CompletionRequest, options: Mapping[str, Any]) -> bool:
    return request.output_schema is not None and options.get("json_output") == "tool"


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
        response = await self._call("converse", converse_params(request, model, options))
        blocks = ((response.get("output") or {}).get("message") or {}).get("content") or []
        return BackendResult(content=content_text(blocks, _tool_json(request, options)),
                             finish_reason=response.get("stopReason"), reasoning=reasoning_text(blocks),
                             usage=unified_usage(response.get("usage")) or Usage(), raw=response)

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
        tool_json = _tool_json(request, options)
        response = await self._call("converse_stream", converse_params(request, model, options))
        body = response["stream"]
        events = iter(body)
        stopped = ended = text_seen = False
        try:
            while (event := await self._next(events)) is not None:
                if "contentBlockDelta" in event:
                    delta = event["contentBlockDelta"].get("delta") or {}
                    text, tool_input = delta.get("text"), (delta.get("toolUse") or {}).get("input")
                    if tool_json:  # the answer is the forced tool's input; Nova writes a text preamble first
                        piece = tool_input
                    elif text is not None:
                        piece, text_seen = text, True
                    else:  # like `complete`: tool input only when there is no text
                        piece = None if text_seen else tool_input
                    thought = (delta.get("reasoningContent") or {}).get("text")
                    yield BackendChunk(piece, raw=event, reasoning=thought if isinstance(thought, str) else None)
                elif "messageStop" in event:
                    stopped = True
                    yield BackendChunk(finish_reason=event["messageStop"].get("stopReason"), raw=event)
                elif "metadata" in event:
                    yield BackendChunk(usage=unified_usage(event["metadata"].get("usage")), raw=event)
                else:
                    yield BackendChunk(raw=event)
            ended = True
            if not stopped:
                raise ProviderError("stream ended before messageStop (cut off)", ErrorKind.CONNECTION)
        finally:
            if not ended:
                body.close()  # stopped early or failed: drop the connection instead of reading on
