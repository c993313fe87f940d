"""Render: a unified request becomes the exact HTTP request a provider expects. Pure, no I/O.

`prepare` resolves what does not change between calls (base URL, auth, static
headers, config) once per provider instance; `render` does the per-call part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from .compiled import CompiledProvider, Render
from .errors import ConfigError, MissingAPIKeyError, TemplateRenderError, UnsupportedInput
from .limits import DEFAULT, LimitExceeded, Limits
from .shapes import write_messages, write_tools
from .spec import SAMPLING_OPTIONS, ProviderSpec, env_name
from .templates import limited
from .trust import refused_address, register_secrets
from .types import CompletionRequest, EmbeddingRequest, HTTPRequest

if TYPE_CHECKING:
    from .settings import Settings

_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(slots=True)
class Prepared:
    """A compiled provider bound to settings: base URL, auth and config resolved."""

    compiled: CompiledProvider
    base_url: str
    headers: dict[str, str]
    auth_params: dict[str, str]
    config: Config
    api_key: str | None
    secret_headers: frozenset[str]
    secret_params: frozenset[str]
    secrets: tuple[str, ...] = ()  # the key and secret config values, masked wherever they appear
    limits: Limits = DEFAULT
    embeddings_base_url: str = ""  # the embeddings' API root: base_url unless the file names its own

    def __repr__(self) -> str:
        return f"Prepared(provider={self.compiled.name!r}, base_url={self.base_url!r})"


def render_error(compiled: CompiledProvider, key: str, exc: BaseException) -> TemplateRenderError:
    """A template failure with the file, key and line (of the template line that failed, when known)."""
    if isinstance(exc, ConfigError) and not isinstance(exc, TemplateRenderError):
        raise exc  # a required config value that is not set: the message says what to set
    key_path = key.split(".")
    file, line = compiled.where(key_path, template_line(exc))
    message = exc.message if isinstance(exc, TemplateRenderError) else str(exc) or type(exc).__name__
    return TemplateRenderError(message, file=file, key=key, line=line)


def template_line(exc: BaseException) -> int | None:
    """The line of the template source where a Jinja runtime error happened (Jinja rewrites tracebacks)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render_text(compiled: CompiledProvider, render: Render, context: Mapping[str, Any], key: str) -> str:
    try:
        return render(context)
    except Exception as exc:  # whatever a template raises is the template's fault, reported with its line
        raise render_error(compiled, key, exc) from exc


class Config(dict[str, str]):
    """Provider config values; a required value that is not set raises when a template reads it.

    Checked on use rather than up front, so a value that is only needed to build the
    base URL is not demanded when the user overrides the base URL.
    """

    def __init__(self, values: dict[str, str], missing: dict[str, str], secrets: tuple[str, ...] = ()) -> None:
        super().__init__(values)
        self.missing = missing
        self.secrets = secrets

    def __missing__(self, key: str) -> str:
        if key in self.missing:
            raise ConfigError(self.missing[key])
        raise KeyError(key)


def resolve_config(compiled: CompiledProvider, settings: Settings) -> Config:
    """The provider's config values from settings or env, defaults filled in."""
    spec = compiled.spec
    given = settings.provider_config.get(spec.name, {})
    values: dict[str, str] = {}
    missing: dict[str, str] = {}
    secrets: list[str] = []
    for key, var in spec.config.items():
        names = [env_name(spec.name, key), *var.env]
        value = given.get(key) or next((v for n in names if (v := settings.env(n))), None) or var.default
        if value is not None:
            values[key] = value
            if var.secret and value:
                secrets.append(value)
        elif var.required:
            missing[key] = (
                f"provider {spec.name!r} needs config {key!r}"
                + (f" ({var.description})" if var.description else "")
                + f": set {' or '.join(names)}, or Settings(provider_config={{{spec.name!r}: {{{key!r}: ...}}}})"
            )
    return Config(values, missing, tuple(secrets))


def prepare(compiled: CompiledProvider, settings: Settings) -> Prepared:
    """Resolve base URL, API key, auth and static headers once. A missing or unusable key raises here, before
    any call, and so does a base URL the engine refuses (a link-local or metadata address)."""
    spec = compiled.spec
    config = resolve_config(compiled, settings)
    takes_key = spec.auth.type not in ("none", "hook")
    api_key = settings.api_key(spec.name, spec.key_env) if takes_key else None
    if api_key is None and takes_key and not spec.auth.optional:
        raise MissingAPIKeyError(
            f"no API key for provider {spec.name!r}: set {' or '.join(spec.key_env)}"
            f" (or pass Settings(api_keys={{{spec.name!r}: ...}}))",
            provider=spec.name, env=tuple(spec.key_env),
        )
    if api_key is not None and not api_key.isascii():
        position = next(i for i, c in enumerate(api_key) if not c.isascii())
        raise ConfigError(f"the API key of provider {spec.name!r} has a non-ASCII character at position "
                          f"{position + 1} of {len(api_key)}; API keys are ASCII (check for a pasted quote or "
                          f"space in {' or '.join(spec.key_env)})")
    secrets = tuple(s for s in (api_key, *config.secrets) if s and len(s) >= 4)
    context = {"api_key": api_key or "", "config": config, "options": compiled.options}
    override = settings.base_urls.get(spec.name) or settings.env(env_name(spec.name, "BASE_URL"))
    base_url = override
    if not base_url and compiled.base_url is not None:
        base_url = _render_text(compiled, compiled.base_url, context, "base_url")
    base_url = (base_url or "").rstrip("/")
    embeddings_base_url = base_url
    if not override and compiled.embeddings is not None and compiled.embeddings.base_url is not None:
        embeddings_base_url = _render_text(compiled, compiled.embeddings.base_url, context,
                                           "embeddings.base_url").rstrip("/")
    for url in {base_url, embeddings_base_url}:
        reason = None if settings.allow_link_local else refused_address(urlsplit(url).hostname or "")
        if reason is not None:
            raise ConfigError(f"provider {spec.name!r}: base URL {url!r} refused: {reason} "
                              "(set GENAI_ALLOW_LINK_LOCAL=true to allow)")
    # A header or query value that renders empty is left out: optional headers are a template away.
    headers = {k: v for k, r in compiled.headers.items() if (v := _render_text(compiled, r, context,
                                                                                 f"request.headers.{k}"))}
    headers.setdefault("content-type", "application/json")
    auth_params: dict[str, str] = {}
    if api_key is not None and compiled.auth_value is not None:
        value = _render_text(compiled, compiled.auth_value, context, "auth.value")
        if spec.auth.type == "header":
            headers[spec.auth.header] = value
        else:
            assert spec.auth.query_param is not None
            auth_params[spec.auth.query_param] = value
    for name, value in headers.items():
        if not value.isascii():
            raise ConfigError(f"provider {spec.name!r}: header {name!r} renders non-ASCII text, which HTTP "
                              "headers cannot carry")
    if spec.auth.type == "hook":
        # The hook's credentials are fetched per call; a request that is shown has this placeholder instead.
        headers[spec.auth.header] = "***"
    # Any header or query value that carries a secret is redacted wherever the request is shown.
    secret_headers = frozenset(k.lower() for k, v in headers.items() if any(s in v for s in secrets))
    if spec.auth.type == "hook":
        secret_headers |= {spec.auth.header.lower()}
    secret_params = frozenset(k for k, v in auth_params.items() if any(s in v for s in secrets))
    register_secrets(secrets)
    limits = settings.limits
    return Prepared(compiled, base_url, headers, auth_params, config, api_key, secret_headers, secret_params,
                    secrets, DEFAULT if limits == DEFAULT else limits, embeddings_base_url)


def resolve_model(compiled: CompiledProvider, model: str | None) -> str:
    """The model id a call uses: the request's (aliases resolved) or the provider's default."""
    spec = compiled.spec
    model = model or spec.default_model
    if not model:
        raise ConfigError(f"no model given and provider {spec.name!r} has no default_model")
    return spec.resolve_alias(model)


def check_capabilities(compiled: CompiledProvider, model: str, request: CompletionRequest) -> None:
    """Refuse, before anything is sent, a request with parts or options the model cannot take."""
    caps = compiled.capabilities_for(model)
    lacks: list[str] = []
    if (request.tools or request.tool_choice is not None) and not caps.tools:
        lacks.append("tools")
    if request.parallel_tool_calls and not caps.parallel_tool_calls:
        lacks.append("parallel tool calls")
    if request.output_schema is not None and not caps.json_schema:
        lacks.append("output_schema (JSON output)")
    needs = _message_needs(request.messages)
    if "tools" in needs and not caps.tools and "tools" not in lacks:
        lacks.append("tool calls and results in the conversation")
    for need, allowed in (("images", caps.images), ("image URLs", caps.image_urls),
                          ("documents", caps.documents), ("document URLs", caps.document_urls)):
        if need in needs and not allowed:
            lacks.append(need)
    for name in SAMPLING_OPTIONS:
        if getattr(request, name) is not None and name not in caps.sampling:
            lacks.append(name)
    if lacks:
        raise refusal(compiled, model, ", ".join(lacks), "its provider file's capabilities")


def refusal(compiled: CompiledProvider, model: str, what: str, why: str) -> UnsupportedInput:
    """The error for a request a model cannot take: what it lacks, and that nothing was sent."""
    error = UnsupportedInput(what)
    error.args = (f"{compiled.name}/{model} does not take {what} ({why}); nothing was sent",)
    return error


def _message_needs(messages: list[dict[str, Any]]) -> set[str]:
    needs: set[str] = set()
    for message in messages:
        if message.get("role") == "tool" or message.get("tool_calls"):
            needs.add("tools")
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping):
                    kind = part.get("type")
                    if kind == "image_url":
                        image = part.get("image_url")
                        url = image.get("url") if isinstance(image, Mapping) else image
                        needs.add("images" if isinstance(url, str) and url.startswith("data:") else "image URLs")
                    elif kind == "file":
                        file = part.get("file")
                        has_data = isinstance(file, Mapping) and file.get("file_data") is not None
                        needs.add("documents" if has_data else "document URLs")
    return needs


def schema_name(schema: Mapping[str, Any] | None) -> str:
    title = schema.get("title") if schema else None
    name = _SCHEMA_NAME.sub("_", str(title))[:64] if title else ""
    return name or "response"


def render(prepared: Prepared, request: CompletionRequest, stream: bool | None = None) -> HTTPRequest:
    """The HTTP request for one call."""
    compiled = prepared.compiled
    stream = request.stream if stream is None else stream
    model = resolve_model(compiled, request.model)
    if compiled.path is None:
        raise refusal(compiled, model, "chat completions", "its provider file has only embeddings")
    check_capabilities(compiled, model, request)
    try:
        written = write_messages(compiled.messages, request.messages)
        tools, tool_choice = write_tools(compiled.tools, request.tools, request.tool_choice,
                                         request.parallel_tool_calls)
    except UnsupportedInput as exc:
        raise refusal(compiled, model, exc.what, "its provider file has no shape for it") from None
    context = {
        "model": model,
        "messages": written.messages,
        "system": written.system,
        "tools": tools,
        "tool_choice": tool_choice,
        "parallel_tool_calls": request.parallel_tool_calls,
        "stop": request.stop,
        "top_p": request.top_p,
        "seed": request.seed,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        "user": request.user,
        "temperature": request.temperature,
        "temperature_set": "temperature" in request.model_fields_set,
        "max_tokens": request.max_tokens,
        "stream": stream,
        "output_schema": request.output_schema,
        "schema_name": schema_name(request.output_schema),
        "extra": request.extra,
        "request": request,
        "options": compiled.options_for(model),
        "config": prepared.config,
        "chat_templates": compiled.chat_templates,
    }
    if prepared.limits is not DEFAULT:
        with limited(prepared.limits):
            return _render(prepared, context, stream)
    return _render(prepared, context, stream)


def _render(prepared: Prepared, context: dict[str, Any], stream: bool) -> HTTPRequest:
    compiled = prepared.compiled
    path_template = compiled.stream_path if stream and compiled.stream_path is not None else compiled.path
    assert path_template is not None
    queries = {**compiled.query, **compiled.stream_query} if stream else compiled.query
    url, secret_params = _url(prepared, path_template, queries, context, "request")
    content = b"" if compiled.body is None else _body(prepared, compiled.body, compiled.body_is_json, context,
                                                      "request.body")
    return HTTPRequest(compiled.spec.request.method if compiled.spec.request else "POST", url,
                       dict(prepared.headers), content, prepared.secret_headers, secret_params)


def _url(prepared: Prepared, path_template: Render, queries: Mapping[str, Render], context: Mapping[str, Any],
         section: str, base_url: str | None = None) -> tuple[str, frozenset[str]]:
    """The URL (base URL, rendered path and query, auth query values) and the query names that carry secrets."""
    compiled = prepared.compiled
    root = prepared.base_url if base_url is None else base_url
    url = root + _render_text(compiled, path_template, context, f"{section}.path")
    params = {k: v for k, r in queries.items() if (v := _render_text(compiled, r, context, f"{section}.query.{k}"))}
    secret_params = prepared.secret_params
    if params and prepared.secrets:
        carrying = {k for k, v in params.items() if any(s in v for s in prepared.secrets)}
        secret_params = secret_params | carrying if carrying else secret_params
    params.update(prepared.auth_params)
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    return url, secret_params


def _body(prepared: Prepared, template: Render, is_json: bool, context: Mapping[str, Any], key: str) -> bytes:
    """A rendered JSON body, checked and within the request size limit."""
    compiled = prepared.compiled
    try:
        text = template(context)
    except Exception as exc:  # whatever a template raises is the template's fault, reported with its line
        raise render_error(compiled, key, exc) from exc
    if not is_json:
        try:
            json.loads(text)
        except ValueError as exc:
            raise render_error(compiled, key, TemplateRenderError(
                f"rendered invalid JSON ({exc}): {text[:200]!r}")) from exc
    try:
        content = text.encode()
    except UnicodeEncodeError:  # lone surrogates: send them as the JSON escapes they decode from
        content = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()
    if len(content) > prepared.limits.max_request_bytes:
        raise render_error(compiled, key, LimitExceeded(
            "max_request_bytes", prepared.limits.max_request_bytes, f"the request body ({len(content):,} bytes)"))
    return content


def render_embeddings(prepared: Prepared, request: EmbeddingRequest, inputs: list[str], model: str) -> HTTPRequest:
    """The HTTP request of one batch of an embeddings call (``inputs``: the batch's texts)."""
    compiled = prepared.compiled
    embeddings = compiled.embeddings
    assert embeddings is not None and compiled.spec.embeddings is not None
    context = {
        "model": model, "inputs": inputs, "dimensions": request.dimensions, "input_type": request.input_type,
        "user": request.user, "extra": request.extra, "options": compiled.options_for(model),
        "config": prepared.config,
    }
    with limited(prepared.limits):
        url, secret_params = _url(prepared, embeddings.path, embeddings.query, context, "embeddings",
                                  prepared.embeddings_base_url or prepared.base_url)
        content = _body(prepared, embeddings.body, embeddings.body_is_json, context, "embeddings.body")
    return HTTPRequest(compiled.spec.embeddings.method, url, dict(prepared.headers), content,
                       prepared.secret_headers, secret_params)


def resolve_embedding_model(compiled: CompiledProvider, model: str | None) -> str:
    """The model an embeddings call uses: the request's (aliases resolved), else ``embeddings.default_model``."""
    spec = compiled.spec
    model = model or (spec.embeddings.default_model if spec.embeddings else None)
    if not model:
        raise ConfigError(f"no model given and provider {spec.name!r} has no embeddings.default_model")
    return spec.resolve_alias(model)


def check_embedding_request(compiled: CompiledProvider, model: str, request: EmbeddingRequest) -> None:
    """Refuse, before anything is sent, an embeddings call the provider or model cannot take."""
    spec = compiled.spec
    if spec.embeddings is None:
        raise refusal(compiled, model, "embeddings", "its provider file has no embeddings section")
    listed = next((m for m in spec.models if m.id == model), None)
    if listed is not None and listed.kind != "embedding":
        raise refusal(compiled, model, "embeddings", f"it is a {listed.kind} model, not an embedding model")
    lacks = [name for name in ("dimensions", "input_type", "user")
             if getattr(request, name) is not None and name not in spec.embeddings.takes]
    if lacks:
        raise refusal(compiled, model, ", ".join(lacks), "its provider file's embeddings.takes")


def with_placeholders(spec: ProviderSpec, settings: Settings, *, key: str = "placeholder-key",
                      force: bool = False) -> tuple[Settings, list[str]]:
    """Settings that can render any request of a provider: a stand-in API key and config values where none
    are set (``force``: whatever is set, so the result never depends on the environment). Returns them with a
    note per stand-in, for tools that show requests without sending them (render, check, docs)."""
    from pydantic import SecretStr

    notes: list[str] = []
    update: dict[str, Any] = {}
    if spec.auth.type == "hook":
        notes.append(f"{spec.auth.header} comes from the auth hook ({spec.auth.hook}) when a call is made; "
                     "shown as ***")
    elif spec.auth.type != "none" and (force or settings.api_key(spec.name, spec.key_env) is None):
        update["api_keys"] = {**settings.api_keys, spec.name: SecretStr(key)}
        notes.append(f"no API key set ({' or '.join(spec.key_env)}); a placeholder is used, shown as ***")
    given = {} if force else settings.provider_config.get(spec.name, {})
    missing = {
        name: var.default if force and var.default is not None else f"your-{name.replace('_', '-')}"
        for name, var in spec.config.items()
        if force or (var.required and var.default is None and not given.get(name)
                     and not any(settings.env(n) for n in [env_name(spec.name, name), *var.env]))
    }
    if missing:
        update["provider_config"] = {**settings.provider_config, spec.name: {**given, **missing}}
        notes.append(f"config not set, placeholders used: {', '.join(missing)}")
    return (settings.model_copy(update=update) if update else settings), notes
