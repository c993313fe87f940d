"""The ``genai`` commands: each reads its arguments, calls the library and prints the result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .console import Cell, Console, count, json_text, money, per_million, show_path, yaml_text

if TYPE_CHECKING:
    from ..registry import Registry
    from ..settings import Settings
    from ..spec import ProviderSpec
    from ..types import CompletionResponse, EmbeddingRequest

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A mistake on the command line; reported in one line with exit code 2."""


def one_line(exc: BaseException) -> str:
    """An error in one line; a file error as ``file:line: key: message``."""
    from ..check import Problem
    from ..errors import ProviderFileError

    if isinstance(exc, ProviderFileError):
        return Problem.of(exc).format(show_path)
    return " ".join(str(exc).split()) or type(exc).__name__


# -- arguments ------------------------------------------------------------------------------------------


def settings_of(args: argparse.Namespace) -> Settings:
    """Settings from the environment, plus the folders given with --providers-path."""
    from ..settings import Settings

    settings = Settings()
    extra = [Path(p) for p in getattr(args, "providers_path", None) or []]
    if extra:
        settings = settings.model_copy(update={"providers_path": [*settings.providers_path, *extra]})
    return settings


def registry_of(settings: Settings) -> Registry:
    from ..registry import default_registry

    return default_registry(settings)


def _prompt(args: argparse.Namespace) -> str:
    """The prompt: the words given, or stdin when there are none (or just '-')."""
    words = args.prompt or []
    if words and words != ["-"]:
        return " ".join(words)
    if sys.stdin is None or (not words and sys.stdin.isatty()):
        raise UsageError("no prompt: give it as an argument or pipe it on stdin")
    text = sys.stdin.read()
    if not text.strip():
        raise UsageError("the prompt read from stdin is empty")
    return text


def _read_data(name: str, what: str) -> Any:
    """JSON (or YAML) from a file, or from stdin for '-'."""
    if name == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{what} {name}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError:
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{what} {name}: neither JSON nor YAML ({exc})") from None


def _request_fields(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The conversation and request fields from --messages, -s, PROMPT, --image, --file and --tools."""
    messages: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    if getattr(args, "messages", None):
        data = _read_data(args.messages, "--messages")
        if isinstance(data, dict):
            fields = {k: v for k, v in data.items() if k != "messages"}
            data = data.get("messages")
        if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
            raise UsageError("--messages: expected a list of messages, or an object with 'messages'")
        messages = data
    if args.system:
        messages = [{"role": "system", "content": args.system}, *messages]
    if args.prompt or not messages:
        messages.append({"role": "user", "content": _prompt(args)})
    attachments = [*(_image_part(i) for i in getattr(args, "image", None) or []),
                   *(_file_part(f) for f in getattr(args, "file", None) or [])]
    if attachments:
        last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        if last is None:
            raise UsageError("--image/--file: there is no user message to attach it to")
        content = last.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}] if content else []
        last["content"] = [*parts, *attachments]
    if getattr(args, "tools", None):
        tools = _read_data(args.tools, "--tools")
        if not isinstance(tools, list):
            raise UsageError("--tools: expected a list of tools")
        fields["tools"] = tools
    if getattr(args, "tool_choice", None):
        choice = args.tool_choice
        fields["tool_choice"] = choice if choice in ("auto", "none", "required") else {
            "type": "function", "function": {"name": choice}}
    return messages, fields


def _data_url(path: Path, default_type: str) -> str:
    import base64
    import mimetypes

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    media_type = mimetypes.guess_type(path.name)[0] or default_type
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _image_part(source: str) -> dict[str, Any]:
    url = source if source.startswith(("http://", "https://", "data:")) else _data_url(Path(source), "image/png")
    return {"type": "image_url", "image_url": {"url": url}}


def _file_part(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        return {"type": "file", "file": {"url": source, "filename": source.rsplit("/", 1)[-1]}}
    path = Path(source)
    return {"type": "file", "file": {"filename": path.name, "file_data": _data_url(path, "application/pdf")}}


def _read_schema(name: str) -> dict[str, Any]:
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--schema {name}: {exc.strerror or exc}") from None
    try:
        schema = json.loads(text)
    except ValueError:
        import yaml

        try:
            schema = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"--schema {name}: neither JSON nor YAML ({exc})") from None
    if not isinstance(schema, dict):
        raise UsageError(f"--schema {name}: a JSON Schema must be an object")
    return schema


def _option(text: str) -> tuple[str, Any]:
    """``key=value`` from -o; the value is read as JSON when it parses (numbers, true, lists), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"-o {text!r}: expected KEY=VALUE, e.g. -o top_p=0.9")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


REQUEST_KEYS = ("stop", "top_p", "seed", "presence_penalty", "frequency_penalty", "user", "parallel_tool_calls")


def _call_options(args: argparse.Namespace, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Options of `Engine.complete` / `CompletionRequest` given on the command line (and in --messages)."""
    options: dict[str, Any] = dict(fields or {})
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    if args.schema:
        options["output_schema"] = _read_schema(args.schema)
    extra = dict(options.pop("extra", None) or {})
    for key, value in (_option(o) for o in args.option or []):
        if key in REQUEST_KEYS:
            options[key] = value
        else:
            extra[key] = value
    if extra:
        options["extra"] = extra
    return options


# -- complete, render -----------------------------------------------------------------------------------


def cmd_complete(args: argparse.Namespace, console: Console) -> int:
    import asyncio

    messages, fields = _request_fields(args)
    response = asyncio.run(_complete(args, console, settings_of(args), messages, _call_options(args, fields)))
    if args.json:
        console.print(json_text(response.model_dump(mode="json")))
    elif response.success:
        for call in response.tool_calls:
            console.print(f"{console.paint('→ tool call', 'cyan')} {call.name}({call.arguments})  [{call.id}]")
        console.note(_summary(response))
    if not response.success:
        where = f"{response.provider}/{response.model}" if response.model else str(response.provider)
        kind = f"{response.error_kind}: " if response.error_kind else ""
        console.error(f"{where}: {kind}{response.error}")
        return EXIT_FAILED
    return EXIT_OK


async def _complete(args: argparse.Namespace, console: Console, settings: Settings,
                    messages: list[dict[str, Any]], options: dict[str, Any]) -> CompletionResponse:
    from ..client import Engine

    async with Engine(settings) as engine:
        if args.no_stream:
            response = await engine.acomplete(args.model, messages, **options)
            if not args.json and response.content:
                console.print(response.content)
            return response
        stream = engine.astream(args.model, messages, **options)
        at_line_start = True
        try:
            async for delta in stream:
                if not args.json:
                    console.write(delta)
                    at_line_start = delta.endswith("\n")
        finally:
            if not at_line_start:  # also after Ctrl-C, so the shell prompt starts on its own line
                console.write("\n")
            await stream.aclose()
        assert stream.response is not None
        return stream.response


def _summary(response: CompletionResponse) -> str:
    """One line for stderr: model, tokens, cost, latency, finish reason."""
    parts = [f"{response.provider}/{response.model}"]
    if response.input_tokens is None and response.output_tokens is None:
        parts.append("tokens not reported")
    else:
        tokens = f"{count(response.input_tokens)} in, {count(response.output_tokens)} out tokens"
        details = [f"{count(n)} {label}" for n, label in ((response.cached_input_tokens, "cached"),
                                                          (response.reasoning_tokens, "reasoning")) if n]
        parts.append(tokens + (f" ({', '.join(details)})" if details else ""))
    parts.append(money(response.cost_usd) if response.cost_usd is not None else "cost unknown (no price)")
    if response.latency_ms is not None:
        parts.append(f"{response.latency_ms:,.0f} ms")
    if response.finish_reason:
        native = response.native_finish_reason
        shown = response.finish_reason + (f" ({native})" if native and native != response.finish_reason else "")
        parts.append(f"finish: {shown}")
    return " · ".join(parts)


def cmd_render(args: argparse.Namespace, console: Console) -> int:
    from ..api import render_embeddings_request, render_request
    from ..client import Engine
    from ..render import with_placeholders
    from ..types import CompletionRequest

    settings = settings_of(args)
    engine = Engine(settings)
    provider, model = engine.route(args.model)
    if args.embed:
        request_ = _embedding_request(args, model, args.prompt)
    else:
        messages, fields = _request_fields(args)
        request = CompletionRequest(messages=messages, model=model, stream=args.stream,
                                    **_call_options(args, fields))
    settings, notes = with_placeholders(engine.registry.spec(provider), settings)
    for note in notes:
        console.note(f"note: {note}")
    shown = [r.to_dict() for r in render_embeddings_request(provider, request_, settings)] if args.embed \
        else [render_request(provider, request, settings).to_dict()]
    if args.json:
        console.print(json_text(shown[0] if len(shown) == 1 else shown))
        return EXIT_OK
    for number, one in enumerate(shown):
        if number:
            console.print()
        console.print(f"{one['method']} {one['url']}", "bold")
        for name, value in one["headers"].items():
            console.print(f"{console.paint(name, 'cyan')}: {value}")
        if one["body"] is not None:
            console.print()
            console.print(json_text(one["body"]))
    return EXIT_OK


def _embedding_request(args: argparse.Namespace, model: str | None, texts: list[str]) -> EmbeddingRequest:
    from ..errors import ConfigError
    from ..types import EmbeddingRequest

    if not texts:
        raise ConfigError("no texts to embed: give them as arguments, with --input FILE, or on stdin")
    return EmbeddingRequest(inputs=texts, model=model, dimensions=args.dimensions, input_type=args.input_type)


def cmd_embed(args: argparse.Namespace, console: Console) -> int:
    from ..client import Engine

    texts = list(args.texts)
    if args.input is not None or not texts:
        source = sys.stdin.read() if args.input in (None, "-") else Path(args.input).read_text(encoding="utf-8")
        texts += [line for line in source.splitlines() if line.strip()]
    engine = Engine(settings_of(args))
    _, model = engine.route(args.model)
    request = _embedding_request(args, model, texts)
    with engine:
        response = engine.embed(args.model, request.inputs, dimensions=request.dimensions,
                                input_type=request.input_type)
    if args.json:
        console.print(json_text(response.model_dump(mode="json")))
    else:
        for index, vector in enumerate(response.vectors):
            if vector is None:
                console.print(f"{index}: {console.paint('(failed)', 'red')}")
            else:
                head = ", ".join(f"{x:.4f}" for x in vector[:4])
                console.print(f"{index}: [{head}{', …' if len(vector) > 4 else ''}] ({len(vector)} dimensions)")
    if response.success:
        tokens = f"{response.input_tokens} tokens" if response.input_tokens is not None else "tokens not reported"
        cost = f"${response.cost_usd:.8g}" if response.cost_usd is not None else "cost unknown"
        console.note(f"{response.provider}/{response.model} · {len(response.vectors)} vectors × "
                     f"{response.dimensions} · {tokens} · {cost} · {response.latency_ms:.0f} ms · "
                     f"{response.batches} request{'s' if response.batches != 1 else ''}")
        return EXIT_OK
    kind = f"{response.error_kind}: " if response.error_kind else ""
    console.error(f"{response.provider}/{response.model}: {kind}{response.error}")
    return EXIT_FAILED


# -- providers, models, pricing, cost -------------------------------------------------------------------


def _key_status(spec: ProviderSpec, settings: Settings) -> tuple[str, str]:
    """Where a provider's key comes from and whether it is set, with a colour."""
    if spec.auth.type == "none":
        return "- (no key)", "dim"
    source = settings.key_source(spec.name, spec.key_env)
    if source is not None:
        return (f"{source} (set)" if source != "settings" else "set in settings"), "green"
    shown = spec.auth.env[0] if spec.auth.env else spec.key_env[0]
    return (f"{shown} (optional)", "dim") if spec.auth.optional else (f"{shown} (not set)", "yellow")


def _stream_format(spec: ProviderSpec) -> str:
    if spec.backend is not None:
        return "python"
    return spec.stream.format if spec.stream is not None else "-"


def _report_broken(broken: list[Exception], console: Console) -> int:
    """After a listing: one line per provider file that failed to load, and the exit code."""
    for problem in broken:
        console.error(one_line(problem))
    return EXIT_FAILED if broken else EXIT_OK


def cmd_providers(args: argparse.Namespace, console: Console) -> int:
    if getattr(args, "providers_command", None) == "show":
        return _show_provider(args, console)
    from ..errors import ConfigError

    settings = settings_of(args)
    registry = registry_of(settings)
    rows: list[list[Cell]] = []
    listing: list[dict[str, Any]] = []
    broken: list[Exception] = []
    for name in registry.names():
        try:
            spec = registry.spec(name)
        except ConfigError as exc:
            broken.append(exc)
            rows.append([(name, "red"), "", "", ("invalid file: see below", "red"), "", ""])
            listing.append({"name": name, "error": one_line(exc)})
            continue
        key, style = _key_status(spec, settings)
        rows.append([name, str(len(spec.models)), spec.default_model or "-", (key, style), _stream_format(spec),
                     spec.description])
        listing.append({
            "name": name, "description": spec.description, "models": [m.id for m in spec.models],
            "default_model": spec.default_model, "key_env": spec.key_env if spec.auth.type != "none" else [],
            "key_set": style == "green", "stream": _stream_format(spec), "local": spec.local,
            "file": str(registry.chain(name)[0].path),
        })
    if args.json:
        console.print(json_text(listing))
    else:
        console.table(["PROVIDER", "MODELS", "DEFAULT MODEL", "API KEY", "STREAM", "DESCRIPTION"], rows, right=[1])
    for name, replaced, by in registry.discovery.overrides:
        console.note(f"note: {show_path(by)} overrides provider {name!r} of {show_path(replaced)}")
    return _report_broken(broken, console)


def _show_provider(args: argparse.Namespace, console: Console) -> int:
    from ..errors import ConfigError
    from ..loader import merged_data
    from ..spec import ProviderSpec

    registry = registry_of(settings_of(args))
    chain = registry.chain(args.name)
    error: ConfigError | None = None
    try:
        spec: ProviderSpec | None = registry.spec(args.name)
    except ConfigError as exc:
        spec, error = None, exc
    if args.defaults and spec is not None:
        data = spec.model_dump(exclude_none=True)
    else:
        merged = merged_data(chain)
        data = {key: merged[key] for key in ProviderSpec.model_fields if key in merged}
    if args.json:
        console.print(json_text(data))
    else:
        files = " <- ".join(show_path(source.path) for source in chain)
        console.print(f"# {args.name}: resolved from {files}", "dim")
        console.out.write(yaml_text(data))
    if error is not None:
        console.error(one_line(error))
        return EXIT_FAILED
    return EXIT_OK


def _price_cells(price: Any, local: bool) -> list[str]:
    if local:
        return ["0 (local)", "0", "-"]
    if price is None:
        return ["-", "-", "-"]
    return [per_million(price.input), per_million(price.output), per_million(price.cached_input)]


def cmd_models(args: argparse.Namespace, console: Console) -> int:
    from ..errors import ConfigError
    from ..lifecycle import status
    from ..pricing import describe

    registry = registry_of(settings_of(args))
    rows: list[list[Cell]] = []
    listing: list[dict[str, Any]] = []
    any_model: list[str] = []
    broken: list[Exception] = []
    for name in args.providers or registry.names():
        registry.chain(name)  # an unknown name is a usage error, raised here
        try:
            spec = registry.spec(name)
        except ConfigError as exc:
            broken.append(exc)
            continue
        if not spec.models:
            any_model.append(name)
        for model in spec.models:
            price = registry.prices.quote(spec, model.id).price
            state = status(model)
            style = "red" if state.startswith("retired") else "yellow" if state != "current" else ""
            rows.append([f"{name}/{model.id}", count(model.context_window), count(model.max_output_tokens),
                         *_price_cells(price, spec.local), (state, style)])
            listing.append({
                "provider": name, "model": model.id, "aliases": model.aliases, "local": spec.local,
                "context_window": model.context_window, "max_output_tokens": model.max_output_tokens,
                "price": describe(price) if price is not None else None, "status": state.split(" ")[0],
                "deprecated": str(model.deprecated) if model.deprecated else None,
                "retired": str(model.retired) if model.retired else None, "replacement": model.replacement,
                "notice": model.notice,
            })
    if args.json:
        console.print(json_text(listing))
    else:
        console.table(["MODEL", "CONTEXT", "MAX OUTPUT", "INPUT $/M", "OUTPUT $/M", "CACHED $/M", "STATUS"], rows,
                      right=range(1, 6))
        if any_model:
            console.note(f"no model list (any model id the server knows): {', '.join(any_model)}")
    return _report_broken(broken, console)


def cmd_pricing(args: argparse.Namespace, console: Console) -> int:
    from ..errors import ConfigError
    from ..pricing import describe, iter_rules

    registry = registry_of(settings_of(args))
    prices = registry.prices
    rows: list[list[Cell]] = []
    listing: dict[str, dict[str, Any]] = {}
    for name in args.providers or sorted(set(registry.names()) | prices.providers()):
        file_prices = {}
        if name in registry.found:
            try:
                file_prices = registry.spec(name).pricing
            except ConfigError as exc:
                console.warn(f"{one_line(exc)} (its own pricing block is left out)")
        elif args.providers and name not in prices.providers():
            registry.chain(name)  # unknown everywhere: raises the usual error
        for model, pricing in sorted(prices.schedules(name, file_prices).items()):
            periods = [p.price for p in pricing.periods]
            listing.setdefault(name, {})[model] = describe(periods[0]) if len(periods) == 1 else [
                describe(p) for p in periods]
            for price in periods:
                when = [f"from {price.from_}"] if price.from_ else []
                when += [f"until {price.until}"] if price.until else []
                rules = [*when, *iter_rules(price)]
                rows.append([f"{name}/{model}", per_million(price.input), per_million(price.output),
                             per_million(price.cached_input), per_million(price.cache_write),
                             "; ".join(rules) or "-", str(price.date or "-"), price.source or "-"])
    if args.json:
        console.print(json_text(listing))
        return EXIT_OK
    console.table(["MODEL", "INPUT", "OUTPUT", "CACHED IN", "CACHE WRITE", "RULES", "CHECKED", "SOURCE"], rows,
                  right=range(1, 5))
    console.note("USD per million tokens. Precedence, field by field: provider file < bundled pricing.yaml < "
                 "GENAI_PRICING_FILE. The rates of a rule: genai pricing --json.")
    return EXIT_OK


def _instant(text: str | None, flag: str) -> Any:
    """An ISO date or date-time from the command line, as an aware UTC datetime (a date: its midnight UTC)."""
    import datetime

    if text is None:
        return None
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected an ISO date or time, such as 2027-01-01 or "
                         "2026-12-01T02:30:00Z") from None
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)


def vars_of(rates: Any) -> dict[str, Any]:
    return {name: getattr(rates, name) for name in ("input", "output", "cached_input", "cache_write",
                                                    "cache_write_1h")}


def cmd_pricing_audit(args: argparse.Namespace, console: Console) -> int:
    from ..audit import audit, load_audit_data

    registry = registry_of(settings_of(args))
    for name in args.providers or []:
        if name not in registry.prices.providers():
            registry.chain(name)  # unknown everywhere: the usual error
    data = load_audit_data([Path(p) for p in args.known or []])
    report = audit(registry, args.providers or [], at=_instant(args.at, "--at"), data=data)
    if args.json:
        console.print(json_text({
            "genai_prices": report.version, "at": report.at.isoformat(),
            "compared": [{"provider": p, "model": m, "genai_prices": g} for p, m, g in report.compared],
            "not_in_genai_prices": [{"provider": p, "model": m} for p, m in report.not_in_genai_prices],
            "differences": [{
                "provider": d.provider, "model": d.model, "rate": d.field, "service_tier": d.service_tier,
                "where": d.where, "ours": str(d.ours), "genai_prices": str(d.theirs), "our_source": d.our_source,
                "their_source": d.their_source,
                "explained": None if d.explained is None else {"reason": d.explained.reason,
                                                               "source": d.explained.source},
            } for d in report.differences],
        }))
        return EXIT_FAILED if report.unexplained else EXIT_OK
    console.print(f"genai-prices {report.version}, prices at {report.at:%Y-%m-%d %H:%M} UTC: "
                  f"{len(report.compared)} models compared, {len(report.not_in_genai_prices)} not in genai-prices")

    def rows(differences: list[Any], reasons: bool) -> list[list[Cell]]:
        return [[f"{d.provider}/{d.model}", d.field + (f" ({d.service_tier})" if d.service_tier else ""), d.where,
                 per_million(d.ours), per_million(d.theirs),
                 *([d.explained.reason, d.explained.source] if reasons else [d.our_source, d.their_source])]
                for d in differences]

    unexplained = report.unexplained
    if unexplained:
        console.print()
        console.print(f"{len(unexplained)} disagreement{'s' * (len(unexplained) != 1)} (USD per million tokens):",
                      "bold")
        console.table(["MODEL", "RATE", "WHERE", "OURS", "GENAI-PRICES", "OUR SOURCE", "THEIR SOURCE"],
                      rows(unexplained, False), right=[3, 4])
    if args.all and report.explained:
        console.print()
        console.print(f"{len(report.explained)} explained (price-audit.yaml):", "bold")
        console.table(["MODEL", "RATE", "WHERE", "OURS", "GENAI-PRICES", "REASON", "SOURCE"],
                      rows(report.explained, True), right=[3, 4])
    if args.all and report.not_in_genai_prices:
        console.print()
        console.print("not in genai-prices: " + ", ".join(f"{p}/{m}" for p, m in report.not_in_genai_prices))
    console.print()
    explained = len(report.explained)
    summary = f"{len(unexplained)} unexplained, {explained} explained"
    if explained and not args.all:
        summary += " (--all lists them with their reasons)"
    console.print(summary, "red" if unexplained else "green")
    return EXIT_FAILED if unexplained else EXIT_OK


def cmd_cost(args: argparse.Namespace, console: Console) -> int:
    from ..client import Engine
    from ..pricing import Usage, describe

    for label, value in (("INPUT_TOKENS", args.input_tokens), ("OUTPUT_TOKENS", args.output_tokens),
                         ("--cached", args.cached), ("--cache-write", args.cache_write),
                         ("--cache-write-1h", args.cache_write_1h)):
        if value < 0:
            raise UsageError(f"{label} cannot be negative")
    if args.cached + max(args.cache_write, args.cache_write_1h) > args.input_tokens:
        raise UsageError("--cached and --cache-write are part of INPUT_TOKENS, so they cannot add up to more")
    if args.cache_write_1h > args.cache_write and args.cache_write:
        raise UsageError("--cache-write-1h is part of --cache-write, so it cannot be more")
    at = _instant(args.at, "--at")
    quote = Engine(settings_of(args)).quote(args.model)
    name = f"{quote.provider}/{quote.model}"
    if not quote.known:
        console.error(f"no price known for {name}: add it to a pricing file (GENAI_PRICING_FILE) "
                      "or to the provider file's 'pricing'")
        return EXIT_FAILED
    usage = Usage(args.input_tokens, args.output_tokens, args.cached, args.cache_write,
                  cache_write_1h_tokens=args.cache_write_1h)
    charge = quote.charge(usage, at, args.service_tier)
    if not quote.local and charge is None:
        console.error(f"no price of {name} is in effect at {at or 'this time'} (its periods do not cover it)")
        return EXIT_FAILED
    cost = quote.cost(usage, at, args.service_tier)
    price = charge.price if charge is not None else quote.price
    if args.json:
        console.print(json_text({
            "provider": quote.provider, "model": quote.model, "input_tokens": args.input_tokens,
            "output_tokens": args.output_tokens, "cached_input_tokens": args.cached,
            "cache_write_tokens": args.cache_write, "cache_write_1h_tokens": args.cache_write_1h,
            "service_tier": args.service_tier, "at": at.isoformat() if at else None,
            "cost_usd": float(cost or 0), "cost_usd_exact": str(cost),
            "price": describe(price) if price is not None else None, "local": quote.local,
            "rates": None if charge is None else {k: str(v) for k, v in vars_of(charge.rates).items()},
            "rules": [] if charge is None else list(charge.rules),
        }))
        return EXIT_OK
    counts = f"{count(args.input_tokens)} input + {count(args.output_tokens)} output tokens"
    cached = [f"{count(n)} {label}" for n, label in ((args.cached, "cached"), (args.cache_write, "cache-write"))
              if n]
    console.print(f"{name}: {money(cost)} for {counts}" + (f" ({', '.join(cached)})" if cached else ""))
    if price is None:
        console.print("  a local provider: calls cost nothing", "dim")
        return EXIT_OK
    assert charge is not None
    rates = charge.rates
    per = [f"input ${per_million(rates.input)}", f"output ${per_million(rates.output)}",
           f"cached input ${per_million(rates.cached_input)}", f"cache write ${per_million(rates.cache_write)}"]
    if args.cache_write_1h:
        per.append(f"1-hour cache write ${per_million(rates.cache_write_1h)}")
    console.print(f"  per million tokens: {', '.join(per)}", "dim")
    if charge.rules:
        console.print(f"  rates chosen by: {'; '.join(charge.rules)}", "dim")
    if price.source or price.date:
        console.print(f"  source: {price.source or '?'}" + (f" (checked {price.date})" if price.date else ""), "dim")
    return EXIT_OK


# -- check, schema, docs --------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, console: Console) -> int:
    from ..check import check
    from ..errors import ConfigError

    paths = [Path(name) for name in args.files]
    try:
        result = check(settings_of(args), paths, [Path(p) for p in args.pricing or []])
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    reported: set[str] = set()
    for report in result.reports:
        if not report.problems:
            console.print(f"{show_path(report.path)}: {console.paint('ok', 'green')}")
        for problem in report.problems:
            line = problem.format(show_path)
            if line not in reported:  # a broken parent file shows once, not once per child
                reported.add(line)
                console.print(line, "yellow" if problem.warning else "dim" if problem.note else "red")
    providers = sum(r.kind == "provider" for r in result.reports)
    pricing = len(result.reports) - providers
    files = f"{providers} provider file{'s' * (providers != 1)}"
    files += f" and {pricing} pricing file{'s' * (pricing != 1)}" if pricing else ""
    errors, warnings = result.errors, result.warnings
    summary = f"checked {files}: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    console.print(summary, "bold" if errors else "dim")
    return EXIT_OK if result.ok else EXIT_FAILED


def _compare(path: Path, expected: str, fix: str, console: Console) -> int:
    try:
        current = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    if current == expected:
        console.print(f"{show_path(path)}: up to date")
        return EXIT_OK
    console.error(f"{show_path(path)} is out of date; run: {fix}")
    return EXIT_FAILED


def _write(path: Path, text: str, console: Console) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        console.note(f"{show_path(path)}: up to date")
    else:
        path.write_text(text, encoding="utf-8")
        console.note(f"wrote {show_path(path)}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, console: Console) -> int:
    from .docs import schema_text

    text = schema_text()
    if args.check:
        return _compare(Path(args.check), text, f"genai schema -o {args.check}", console)
    if args.output:
        return _write(Path(args.output), text, console)
    console.out.write(text)
    return EXIT_OK


def cmd_docs(args: argparse.Namespace, console: Console) -> int:
    from .docs import providers_table, reference, update_providers_table, update_reference

    if args.providers:
        generated = providers_table(registry_of(settings_of(args)))

        def update(text: str) -> str:
            return update_providers_table(text, generated)
    else:
        generated = reference()
        update = update_reference
    if not (args.write or args.check):
        console.out.write(generated)
        return EXIT_OK
    path = Path(args.write or args.check)
    try:
        current = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    updated = update(current)
    flag = " --providers" if args.providers else ""
    if args.check:
        return _compare(path, updated, f"genai docs{flag} --write {args.check}", console)
    return _write(path, updated, console)


# -- demo -----------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    import asyncio

    from ..registry import Registry
    from ..testing.selftest import run_selftest
    from ..testing.server import FakeServer

    settings = settings_of(args)
    registry = Registry(settings)
    names = args.provider or registry.names()
    for name in names:
        registry.chain(name)  # unknown names fail here, before the server starts
    stream = not args.no_stream
    with FakeServer(chunk_size=7, max_seconds=300) as server:
        if not args.json:
            console.print("Offline self-test: each provider runs end to end (request template, HTTP over "
                          "loopback, " + ("stream parsing" if stream else "response parsing") + ", cost)", "bold")
            console.print(f"against the bundled fake server (engine.testing) at {server.base_url}, in "
                          "its own wire format.")
            console.print("Nothing leaves this machine: no real API is called, no key is used, nothing is billed.")
            console.print()
        results = asyncio.run(run_selftest(registry, settings, server, names, stream=stream))
    if args.json:
        console.print(json_text([r.to_dict() for r in results]))
    else:
        styles = {"ok": "green", "fail": "red", "skipped": "dim"}
        table: list[list[Cell]] = []
        for r in results:
            text = r.text if r.result == "ok" else r.error or ""
            text = text if len(text) <= 60 else text[:59] + "…"
            tokens = ("-" if r.input_tokens is None and r.output_tokens is None
                      else f"{count(r.input_tokens)} / {count(r.output_tokens)}")
            time = "-" if r.latency_ms is None else f"{r.latency_ms:,.0f} ms"
            embed = ("-", "dim") if r.embeddings is None else (r.embeddings, styles[r.embeddings])
            table.append([r.provider, r.format or "-", (r.result, styles[r.result]), embed, tokens,
                          money(r.cost_usd), time, (text, "" if r.result == "ok" else styles[r.result])])
        console.table(["PROVIDER", "FORMAT", "RESULT", "EMBED", "TOKENS IN/OUT", "COST", "TIME", "REPLY"], table,
                      right=[4, 5, 6])
        counts = {kind: sum(r.result == kind for r in results) for kind in styles}
        console.print()
        console.print(f"{counts['ok']} ok, {counts['fail']} failed, {counts['skipped']} skipped "
                      "(their wire format is not one the local server speaks)",
                      "red" if counts["fail"] else "green")
    return EXIT_FAILED if any(r.result == "fail" for r in results) else EXIT_OK


# -- record, test -----------------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace, console: Console) -> int:
    from ..testing.recorded import fixtures_folder, record

    registry = registry_of(settings_of(args))
    folder = Path(args.out) if args.out else fixtures_folder(registry, args.provider)
    recorded = record(args.provider, model=args.model, folder=folder, registry=registry)
    if not recorded:
        console.error(f"nothing recorded for {args.provider}: no scenario got a reply (is the API reachable?)")
        return EXIT_FAILED
    console.print(f"{args.provider}: recorded {', '.join(recorded)} in {show_path(folder)}")
    console.note("review the replies and expected.yaml, then run: genai test " + args.provider)
    return EXIT_OK


def cmd_test(args: argparse.Namespace, console: Console) -> int:
    from ..testing.recorded import check_recorded

    registry = registry_of(settings_of(args))
    failed = 0
    for name in args.providers:
        report = check_recorded(name, folder=Path(args.dir) if args.dir else None, update=args.update,
                                registry=registry)
        for line in report.summary().splitlines():
            console.print(line, "red" if "FAIL" in line else "green" if report.ok else "")
        failed += not report.ok
    return EXIT_FAILED if failed else EXIT_OK


# -- gateway: serve, usage, keys ----------------------------------------------------------------------------


def _gateway_config(args: argparse.Namespace) -> str:
    import os

    path = args.config or os.environ.get("GENAI_GATEWAY_CONFIG")
    if not path:
        raise UsageError("no gateway config: give --config FILE (or set GENAI_GATEWAY_CONFIG); see docs/gateway.md")
    return str(path)


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    import os

    from ..gateway.serve import serve

    if args.providers_path:  # the workers read their settings from the environment
        paths = [p for p in os.environ.get("GENAI_PROVIDERS_PATH", "").split(os.pathsep) if p]
        os.environ["GENAI_PROVIDERS_PATH"] = os.pathsep.join([*paths, *args.providers_path])
    return serve(_gateway_config(args), host=args.host, port=args.port, workers=args.workers,
                 access_log=not args.no_access_log, log_level=args.log_level)


def _ledger_files(args: argparse.Namespace) -> list[Path]:
    if args.db:
        files = [Path(p) for p in args.db]
    else:
        from ..gateway.config import load_config

        files = [load_config(_gateway_config(args)).sqlite_path()]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"no ledger at {', '.join(missing)}")
    return files


def cmd_usage(args: argparse.Namespace, console: Console) -> int:
    import datetime as dt

    from ..gateway.ledger import usage

    def day(text: str | None) -> dt.date | None:
        if text is None:
            return None
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise UsageError(f"not a date (YYYY-MM-DD): {text!r}") from None

    by = [name.strip() for part in args.by or ["key"] for name in part.split(",") if name.strip()]
    try:
        rows = usage(_ledger_files(args), by, since=day(args.since), until=day(args.until), key=args.key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        console.print(json_text(rows))
        return EXIT_OK
    table: list[list[Cell]] = [[*(str(row[name] if row[name] is not None else "-") for name in by),
                                f"{row['requests']:,}", f"{row['errors']:,}", f"{row['input_tokens']:,}",
                                f"{row['output_tokens']:,}", money(row["cost_usd"])] for row in rows]
    if len(rows) > 1:
        total = {name: sum(row[name] for row in rows) for name in ("requests", "errors", "input_tokens",
                                                                    "output_tokens", "cost_usd")}
        table.append([("total", "bold"), *([""] * (len(by) - 1)), f"{total['requests']:,}", f"{total['errors']:,}",
                      f"{total['input_tokens']:,}", f"{total['output_tokens']:,}", money(total["cost_usd"])])
    console.table([*(name.upper() for name in by), "REQUESTS", "ERRORS", "TOKENS IN", "TOKENS OUT", "COST"], table,
                  right=range(len(by), len(by) + 5))
    unpriced = sum(row["unpriced"] for row in rows)
    if unpriced:
        console.note(f"{unpriced:,} successful requests had no known price and count as 0 in COST")
    return EXIT_OK


def cmd_keys(args: argparse.Namespace, console: Console) -> int:
    from ..gateway.keys import hash_key, new_key

    if args.keys_command == "new":
        key = new_key()
        console.print(key)
        console.note("give the key to its user; put only its hash in the gateway config:")
        console.note(f"  - {{name: {args.name}, sha256: \"{hash_key(key)}\"}}")
        return EXIT_OK
    if args.keys_command == "hash":
        text = sys.stdin.readline() if sys.stdin is not None else ""
        key = text.strip()
        if not key:
            raise UsageError("give the key on stdin: echo -n \"$KEY\" | genai keys hash")
        console.print(hash_key(key))
        return EXIT_OK
    raise UsageError("genai keys new | genai keys hash (see genai keys --help)")
