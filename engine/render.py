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
from urllib.parse import urlencode

from .compiled import CompiledProvider, Render
from .errors import ConfigError, MissingAPIKeyError, TemplateRenderError
from .spec import ProviderSpec, env_name
from .types import CompletionRequest, HTTPRequest

if TYPE_CHECKING:
    from .settings import Settings

_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]+")


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

    def __init__(self, values: dict[str, str], missing: dict[str, str]) -> None:
        super().__init__(values)
        self.missing = missing

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
    for key, var in spec.config.items():
        names = [env_name(spec.name, key), *var.env]
        value = given.get(key) or next((v for n in names if (v := settings.env(n))), None) or var.default
        if value is not None:
            values[key] = value
        elif var.required:
            missing[key] = (
                f"provider {spec.name!r} needs config {key!r}"
                + (f" ({var.description})" if var.description else "")
                + f": set {' or '.join(names)}, or Settings(provider_config={{{spec.name!r}: {{{key!r}: ...}}}})"
            )
    return Config(values, missing)


def prepare(compiled: CompiledProvider, settings: Settings) -> Prepared:
    """Resolve base URL, API key, auth and static headers once. A missing key raises here, before any call."""
    spec = compiled.spec
    config = resolve_config(compiled, settings)
    api_key = settings.api_key(spec.name, spec.key_env) if spec.auth.type != "none" else None
    if api_key is None and spec.auth.type != "none" and not spec.auth.optional:
        raise MissingAPIKeyError(
            f"no API key for provider {spec.name!r}: set {' or '.join(spec.key_env)}"
            f" (or pass Settings(api_keys={{{spec.name!r}: ...}}))",
            provider=spec.name, env=tuple(spec.key_env),
        )
    context = {"api_key": api_key or "", "config": config, "options": compiled.options}
    base_url = settings.base_urls.get(spec.name) or settings.env(env_name(spec.name, "BASE_URL"))
    if not base_url and compiled.base_url is not None:
        base_url = _render_text(compiled, compiled.base_url, context, "base_url")
    # A header or query value that renders empty is left out: optional headers are a template away.
    headers = {k: v for k, r in compiled.headers.items() if (v := _render_text(compiled, r, context,
                                                                                 f"request.headers.{k}"))}
    headers.setdefault("content-type", "application/json")
    auth_params: dict[str, str] = {}
    secret_headers: frozenset[str] = frozenset()
    secret_params: frozenset[str] = frozenset()
    if api_key is not None and compiled.auth_value is not None:
        value = _render_text(compiled, compiled.auth_value, context, "auth.value")
        if spec.auth.type == "header":
            headers[spec.auth.header] = value
            secret_headers = frozenset({spec.auth.header.lower()})
        else:
            assert spec.auth.query_param is not None
            auth_params[spec.auth.query_param] = value
            secret_params = frozenset({spec.auth.query_param})
    return Prepared(compiled, (base_url or "").rstrip("/"), headers, auth_params, config, api_key,
                    secret_headers, secret_params)


def resolve_model(compiled: CompiledProvider, model: str | None) -> str:
    """The model id a call uses: the request's (aliases resolved) or the provider's default."""
    spec = compiled.spec
    model = model or spec.default_model
    if not model:
        raise ConfigError(f"no model given and provider {spec.name!r} has no default_model")
    return spec.resolve_alias(model)


def schema_name(schema: Mapping[str, Any] | None) -> str:
    title = schema.get("title") if schema else None
    name = _SCHEMA_NAME.sub("_", str(title))[:64] if title else ""
    return name or "response"


def render(prepared: Prepared, request: CompletionRequest, stream: bool | None = None) -> HTTPRequest:
    """The HTTP request for one call."""
    compiled = prepared.compiled
    stream = request.stream if stream is None else stream
    model = resolve_model(compiled, request.model)
    context = {
        "model": model,
        "messages": request.messages,
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
    }
    path_template = compiled.stream_path if stream and compiled.stream_path is not None else compiled.path
    assert path_template is not None
    path = _render_text(compiled, path_template, context, "request.path")
    url = prepared.base_url + path
    queries = {**compiled.query, **compiled.stream_query} if stream else compiled.query
    params = {k: v for k, r in queries.items() if (v := _render_text(compiled, r, context, f"request.query.{k}"))}
    params.update(prepared.auth_params)
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    content = b""
    if compiled.body is not None:
        try:
            text = compiled.body(context)
        except Exception as exc:  # whatever a template raises is the template's fault, reported with its line
            raise render_error(compiled, "request.body", exc) from exc
        if not compiled.body_is_json:
            try:
                json.loads(text)
            except ValueError as exc:
                raise render_error(compiled, "request.body", TemplateRenderError(
                    f"rendered invalid JSON ({exc}): {text[:200]!r}")) from exc
        content = text.encode()
    return HTTPRequest(compiled.spec.request.method if compiled.spec.request else "POST", url,
                       dict(prepared.headers), content, prepared.secret_headers, prepared.secret_params)


def with_placeholders(spec: ProviderSpec, settings: Settings, *, key: str = "placeholder-key",
                      force: bool = False) -> tuple[Settings, list[str]]:
    """Settings that can render any request of a provider: a stand-in API key and config values where none
    are set (``force``: whatever is set, so the result never depends on the environment). Returns them with a
    note per stand-in, for tools that show requests without sending them (render, check, docs)."""
    from pydantic import SecretStr

    notes: list[str] = []
    update: dict[str, Any] = {}
    if spec.auth.type != "none" and (force or settings.api_key(spec.name, spec.key_env) is None):
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
