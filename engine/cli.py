"""The ``genai`` command line: a thin layer over the library.

``genai --help`` lists the commands; every command has ``--help`` with examples.
Commands import the parts of the engine they use only when they run, so
``--help`` and ``check`` start fast. Results go to stdout, messages to stderr;
colours only on a terminal and never with ``NO_COLOR``. Exit codes: `EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from decimal import Decimal

    from .compiled import CompiledProvider
    from .errors import ProviderFileError, TemplateRenderError
    from .loader import ProviderSource
    from .localserver import LocalServer
    from .pricing import PriceTable
    from .registry import Registry
    from .settings import Settings
    from .spec import ProviderSpec
    from .types import CompletionRequest, CompletionResponse

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXIT_CODES = """\
exit codes:
  0    success
  1    a call failed (success=False), a demo provider failed, or a file has errors (check)
  2    usage or configuration error: bad arguments, unknown provider, missing API key,
       broken provider file
  130  interrupted (Ctrl-C)
"""

ENVIRONMENT = """\
environment:
  GENAI_PROVIDERS_PATH      extra folders of provider files (separated by ':'), later ones win
  GENAI_PRICING_FILE        a pricing file that overrides the bundled prices
  GENAI_DEFAULT_MODEL       the model used when -m is not given
  GENAI_<NAME>_API_KEY      a provider's API key (or the env variable its file names)
  GENAI_<NAME>_BASE_URL     a provider's base URL
  NO_COLOR                  set to turn colours off
"""

# Where the local server serves each wire format, relative to its root (see engine/localserver.py).
WIRE_PREFIX = {"openai": "/v1", "anthropic": "/v1", "ollama": "", "gemini": "/v1beta", "cohere": ""}
# A provider whose `extends` chain does not end in one of those formats is matched by its request path.
WIRE_PATHS = {"/chat/completions": "openai", "/messages": "anthropic", "/api/chat": "ollama",
              ":generateContent": "gemini", "/v2/chat": "cohere"}
SERVER_ROUTES = ("/v1/", "/openai/", "/api/")


class UsageError(Exception):
    """A mistake on the command line; reported in one line with exit code 2."""


# -- output ---------------------------------------------------------------------------------------------


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


Cell = str | tuple[str, str]


class Console:
    """Results on stdout, messages on stderr; ANSI colours only on a terminal and without NO_COLOR."""

    CODES: ClassVar[dict[str, str]] = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33",
                                       "cyan": "36"}

    def __init__(self, color: bool = True) -> None:
        self.out, self.err = sys.stdout, sys.stderr
        wanted = color and not os.environ.get("NO_COLOR")
        self.out_tty = _isatty(self.out)
        self.out_color = wanted and self.out_tty
        self.err_color = wanted and _isatty(self.err)

    def paint(self, text: str, *styles: str, err: bool = False) -> str:
        if not styles or not (self.err_color if err else self.out_color):
            return text
        return f"\x1b[{';'.join(self.CODES[s] for s in styles)}m{text}\x1b[0m"

    def print(self, text: str = "", *styles: str, err: bool = False) -> None:
        stream = self.err if err else self.out
        stream.write(self.paint(text, *styles, err=err) + "\n")
        stream.flush()

    def write(self, text: str) -> None:
        """Text as it comes (a streamed reply), flushed at once."""
        self.out.write(text)
        self.out.flush()

    def error(self, message: str) -> None:
        self.print(f"{self.paint('genai: error:', 'red', 'bold', err=True)} {message}", err=True)

    def warn(self, message: str) -> None:
        self.print(f"{self.paint('genai: warning:', 'yellow', err=True)} {message}", err=True)

    def note(self, message: str) -> None:
        self.print(message, "dim", err=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Cell]], right: Iterable[int] = ()) -> None:
        """Aligned columns; on a terminal the last column is cut to the window width."""
        aligned = set(right)
        texts = [[c if isinstance(c, str) else c[0] for c in row] for row in rows]
        widths = [max([len(h), *(len(row[i]) for row in texts)]) for i, h in enumerate(headers)]
        if self.out_tty and len(headers) > 1:
            import shutil

            room = shutil.get_terminal_size().columns - sum(widths[:-1]) - 2 * (len(headers) - 1)
            if room >= 12 and widths[-1] > room:
                widths[-1] = room
                texts = [[*row[:-1], row[-1] if len(row[-1]) <= room else row[-1][:room - 1] + "…"]
                         for row in texts]

        def line(cells: Sequence[str], styles: Sequence[tuple[str, ...]]) -> str:
            parts = []
            for i, text in enumerate(cells):
                if i in aligned:
                    text = text.rjust(widths[i])
                elif i < len(cells) - 1:
                    text = text.ljust(widths[i])
                parts.append(self.paint(text, *styles[i]))
            return "  ".join(parts).rstrip()

        self.out.write(line(headers, [("bold",)] * len(headers)) + "\n")
        for row, cells in zip(rows, texts, strict=True):
            styles = [() if isinstance(c, str) or not c[1] else (c[1],) for c in row]
            self.out.write(line(cells, styles) + "\n")
        self.out.flush()


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def _show_path(file: str | Path | None) -> str:
    """A path relative to the working directory when it is inside it, else as given."""
    if file is None:
        return "<unknown file>"
    path = Path(file)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(file)


def _money(value: float | Decimal | None) -> str:
    from decimal import Decimal

    if value is None:
        return "-"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0"
    text = f"{amount:.4f}" if amount >= Decimal("0.01") else f"{amount:.10f}"
    whole, _, cents = text.rstrip("0").partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def _per_million(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = f"{value.normalize():f}"
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


# -- shared helpers -------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, plus the folders given with --providers-path."""
    from .settings import Settings

    settings = Settings()
    extra = [Path(p) for p in getattr(args, "providers_path", None) or []]
    if extra:
        settings = settings.model_copy(update={"providers_path": [*settings.providers_path, *extra]})
    return settings


def _registry(settings: Settings) -> Registry:
    from .registry import default_registry

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


def _messages(args: argparse.Namespace, prompt: str) -> list[dict[str, Any]]:
    system = [{"role": "system", "content": args.system}] if args.system else []
    return [*system, {"role": "user", "content": prompt}]


def _read_schema(name: str) -> dict[str, Any]:
    import json

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
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"-o {text!r}: expected KEY=VALUE, e.g. -o top_p=0.9")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _call_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options of `Engine.complete` / `CompletionRequest` given on the command line."""
    options: dict[str, Any] = {}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    if args.schema:
        options["output_schema"] = _read_schema(args.schema)
    extra = dict(_option(o) for o in args.option or [])
    if extra:
        options["extra"] = extra
    return options


def _one_line(exc: BaseException) -> str:
    from .errors import ProviderFileError

    if isinstance(exc, ProviderFileError):
        return Problem.of(exc).format()
    return " ".join(str(exc).split()) or type(exc).__name__


# -- complete -------------------------------------------------------------------------------------------


def cmd_complete(args: argparse.Namespace, console: Console) -> int:
    import asyncio

    messages = _messages(args, _prompt(args))
    options = _call_options(args)
    response = asyncio.run(_complete(args, console, _settings(args), messages, options))
    if args.json:
        console.print(_json(response.model_dump(mode="json")))
    elif response.success:
        console.note(_summary(response))
    if not response.success:
        where = f"{response.provider}/{response.model}" if response.model else str(response.provider)
        kind = f"{response.error_kind}: " if response.error_kind else ""
        console.error(f"{where}: {kind}{response.error}")
        return EXIT_FAILED
    return EXIT_OK


async def _complete(args: argparse.Namespace, console: Console, settings: Settings,
                    messages: list[dict[str, Any]], options: dict[str, Any]) -> CompletionResponse:
    from .client import Engine

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
        tokens = f"{_count(response.input_tokens)} in, {_count(response.output_tokens)} out tokens"
        details = [f"{_count(n)} {label}" for n, label in ((response.cached_input_tokens, "cached"),
                                                           (response.reasoning_tokens, "reasoning")) if n]
        parts.append(tokens + (f" ({', '.join(details)})" if details else ""))
    parts.append(_money(response.cost_usd) if response.cost_usd is not None else "cost unknown (no price)")
    if response.latency_ms is not None:
        parts.append(f"{response.latency_ms:,.0f} ms")
    if response.finish_reason:
        parts.append(f"finish: {response.finish_reason}")
    return " · ".join(parts)


# -- render ---------------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace, console: Console) -> int:
    from .api import render_request
    from .client import Engine
    from .types import CompletionRequest

    settings = _settings(args)
    engine = Engine(settings)
    provider, model = engine.route(args.model)
    messages = _messages(args, _prompt(args))
    request = CompletionRequest(messages=messages, model=model, stream=args.stream, **_call_options(args))
    settings = _with_placeholders(engine.registry, provider, settings, console)
    shown = render_request(provider, request, settings).to_dict()
    if args.json:
        console.print(_json(shown))
        return EXIT_OK
    console.print(f"{shown['method']} {shown['url']}", "bold")
    for name, value in shown["headers"].items():
        console.print(f"{console.paint(name, 'cyan')}: {value}")
    if shown["body"] is not None:
        console.print()
        console.print(_json(shown["body"]))
    return EXIT_OK


def _with_placeholders(registry: Registry, name: str, settings: Settings, console: Console) -> Settings:
    """Settings with a stand-in API key and required config values, so any request can be shown."""
    from pydantic import SecretStr

    from .spec import env_name

    spec = registry.spec(name)
    update: dict[str, Any] = {}
    if spec.auth.type != "none" and settings.api_key(name, spec.key_env) is None:
        update["api_keys"] = {**settings.api_keys, name: SecretStr("placeholder-key")}
        console.note(f"note: no API key set ({' or '.join(spec.key_env)}); a placeholder is used, shown as ***")
    given = settings.provider_config.get(name, {})
    missing = {
        key: f"your-{key.replace('_', '-')}" for key, var in spec.config.items()
        if var.required and var.default is None and not given.get(key)
        and not any(settings.env(n) for n in [env_name(name, key), *var.env])
    }
    if missing:
        update["provider_config"] = {**settings.provider_config, name: {**given, **missing}}
        console.note(f"note: config not set, placeholders used: {', '.join(missing)}")
    return settings.model_copy(update=update) if update else settings


# -- providers, models, pricing, cost -------------------------------------------------------------------


def _key_status(spec: ProviderSpec, settings: Settings) -> tuple[str, str]:
    """The env variable a provider's key comes from and whether it is set, with a colour."""
    if spec.auth.type == "none":
        return "- (no key)", "dim"
    for name in spec.key_env:
        if settings.env(name):
            return f"{name} (set)", "green"
    if spec.name in settings.api_keys:
        return "set in settings", "green"
    shown = spec.auth.env[0] if spec.auth.env else spec.key_env[0]
    if spec.auth.optional:
        return f"{shown} (optional)", "dim"
    return f"{shown} (not set)", "yellow"


def _stream_format(spec: ProviderSpec) -> str:
    if spec.backend is not None:
        return "python"
    return spec.stream.format if spec.stream is not None else "-"


def cmd_providers(args: argparse.Namespace, console: Console) -> int:
    if getattr(args, "providers_command", None) == "show":
        return _show_provider(args, console)
    from .errors import ConfigError

    settings = _settings(args)
    registry = _registry(settings)
    rows: list[list[Cell]] = []
    listing: list[dict[str, Any]] = []
    broken: list[ConfigError] = []
    for name in registry.names():
        try:
            spec = registry.spec(name)
        except ConfigError as exc:
            broken.append(exc)
            rows.append([(name, "red"), "", "", ("invalid file: see below", "red"), "", ""])
            listing.append({"name": name, "error": _one_line(exc)})
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
        console.print(_json(listing))
    else:
        console.table(["PROVIDER", "MODELS", "DEFAULT MODEL", "API KEY", "STREAM", "DESCRIPTION"], rows, right=[1])
    return _report_broken(broken, console)


def _report_broken(broken: list[Any], console: Console) -> int:
    """After a listing: one line per provider file that failed to load, and the exit code."""
    for problem in broken:
        console.error(_one_line(problem))
    return EXIT_FAILED if broken else EXIT_OK


def _show_provider(args: argparse.Namespace, console: Console) -> int:
    from .errors import ConfigError
    from .loader import merged_data
    from .spec import ProviderSpec

    settings = _settings(args)
    registry = _registry(settings)
    chain = registry.chain(args.name)
    error: ConfigError | None = None
    try:
        spec = registry.spec(args.name)
    except ConfigError as exc:
        spec, error = None, exc
    if args.defaults and spec is not None:
        data = spec.model_dump(exclude_none=True)
    else:
        merged = merged_data(chain)
        data = {key: merged[key] for key in ProviderSpec.model_fields if key in merged}
    if args.json:
        console.print(_json(data))
    else:
        files = " <- ".join(_show_path(source.path) for source in chain)
        console.print(f"# {args.name}: resolved from {files}", "dim")
        console.out.write(_yaml(data))
    if error is not None:
        console.error(_one_line(error))
        return EXIT_FAILED
    return EXIT_OK


def _yaml(data: Any) -> str:
    """YAML in the style of the provider files: templates as block text, flat list items on one line."""
    from decimal import Decimal

    import yaml

    class Flow(dict):  # type: ignore[type-arg]
        pass

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    Dumper.add_representer(Decimal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:float", str(v)))
    Dumper.add_representer(Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))

    def flat(value: Any) -> bool:
        return isinstance(value, dict) and all(not isinstance(v, dict) and "\n" not in str(v) for v in value.values())

    def shape(value: Any, parent: str | None = None) -> Any:
        if isinstance(value, list):
            return [Flow(v) if flat(v) else shape(v) for v in value]
        if isinstance(value, dict):
            if parent == "pricing":
                return {k: Flow(v) if flat(v) else shape(v) for k, v in value.items()}
            return {k: shape(v, str(k)) for k, v in value.items()}
        return value

    return yaml.dump(shape(data), Dumper=Dumper, sort_keys=False, allow_unicode=True, width=110)


def _price_cells(price: Any, local: bool) -> list[str]:
    if local:
        return ["0 (local)", "0", "-"]
    if price is None:
        return ["-", "-", "-"]
    return [_per_million(price.input), _per_million(price.output), _per_million(price.cached_input)]


def cmd_models(args: argparse.Namespace, console: Console) -> int:
    from .errors import ConfigError
    from .pricing import describe

    settings = _settings(args)
    registry = _registry(settings)
    names = args.providers or registry.names()
    rows: list[list[Cell]] = []
    listing: list[dict[str, Any]] = []
    any_model: list[str] = []
    broken: list[ConfigError] = []
    for name in names:
        registry.chain(name)  # an unknown name is a usage error, raised here
        try:
            spec = registry.spec(name)
        except ConfigError as exc:
            broken.append(exc)
            continue
        if not spec.models:
            any_model.append(name)
        for model in spec.models:
            price = None if spec.local else registry.prices.price(name, model.id, spec.pricing)
            rows.append([f"{name}/{model.id}", _count(model.context_window), _count(model.max_output_tokens),
                         *_price_cells(price, spec.local)])
            listing.append({
                "provider": name, "model": model.id, "aliases": model.aliases, "local": spec.local,
                "context_window": model.context_window, "max_output_tokens": model.max_output_tokens,
                "price": describe(price) if price is not None else None,
            })
    if args.json:
        console.print(_json(listing))
    else:
        console.table(["MODEL", "CONTEXT", "MAX OUTPUT", "INPUT $/M", "OUTPUT $/M", "CACHED $/M"], rows,
                      right=range(1, 6))
        if any_model:
            console.note(f"no model list (any model id the server knows): {', '.join(any_model)}")
    return _report_broken(broken, console)


def cmd_pricing(args: argparse.Namespace, console: Console) -> int:
    from .errors import ConfigError
    from .pricing import describe

    settings = _settings(args)
    registry = _registry(settings)
    prices = registry.prices
    names = args.providers or sorted(set(registry.names()) | prices.providers())
    rows: list[list[Cell]] = []
    listing: dict[str, dict[str, Any]] = {}
    for name in names:
        file_prices = {}
        if name in registry.found:
            try:
                file_prices = registry.spec(name).pricing
            except ConfigError as exc:
                console.warn(f"{_one_line(exc)} (its own pricing block is left out)")
        elif args.providers and name not in prices.providers():
            registry.chain(name)  # unknown everywhere: raises the usual error
        for model, price in sorted(prices.models(name, file_prices).items()):
            listing.setdefault(name, {})[model] = describe(price)
            rows.append([f"{name}/{model}", _per_million(price.input), _per_million(price.output),
                         _per_million(price.cached_input), _per_million(price.cache_write),
                         str(price.date or "-"), price.source or "-"])
    if args.json:
        console.print(_json(listing))
        return EXIT_OK
    console.table(["MODEL", "INPUT", "OUTPUT", "CACHED IN", "CACHE WRITE", "CHECKED", "SOURCE"], rows,
                  right=range(1, 5))
    console.note("USD per million tokens. Precedence: provider file < bundled pricing.yaml < GENAI_PRICING_FILE.")
    return EXIT_OK


def cmd_cost(args: argparse.Namespace, console: Console) -> int:
    from decimal import Decimal

    from .client import Engine
    from .pricing import Usage, cost_of, describe

    for label, value in (("INPUT_TOKENS", args.input_tokens), ("OUTPUT_TOKENS", args.output_tokens),
                         ("--cached", args.cached), ("--cache-write", args.cache_write)):
        if value < 0:
            raise UsageError(f"{label} cannot be negative")
    if args.cached + args.cache_write > args.input_tokens:
        raise UsageError("--cached and --cache-write are part of INPUT_TOKENS, so they cannot add up to more")
    settings = _settings(args)
    engine = Engine(settings)
    provider, model = engine.route(args.model)
    spec = engine.registry.spec(provider)
    model = spec.resolve_alias(model or spec.default_model or "")
    if not model:
        raise UsageError(f"provider {provider!r} has no default model: give one as {provider}/MODEL")
    usage = Usage(args.input_tokens, args.output_tokens, args.cached, args.cache_write)
    price = None if spec.local else engine.registry.prices.price(provider, model, spec.pricing)
    if not spec.local and price is None:
        console.error(f"no price known for {provider}/{model}: add it to a pricing file (GENAI_PRICING_FILE) "
                      "or to the provider file's 'pricing'")
        return EXIT_FAILED
    cost = Decimal(0) if price is None else cost_of(price, usage)
    if args.json:
        console.print(_json({
            "provider": provider, "model": model, "input_tokens": args.input_tokens,
            "output_tokens": args.output_tokens, "cached_input_tokens": args.cached,
            "cache_write_tokens": args.cache_write, "cost_usd": float(cost or 0), "cost_usd_exact": str(cost),
            "price": describe(price) if price is not None else None, "local": spec.local,
        }))
        return EXIT_OK
    counts = f"{_count(args.input_tokens)} input + {_count(args.output_tokens)} output tokens"
    cached = [f"{_count(n)} {label}" for n, label in ((args.cached, "cached"), (args.cache_write, "cache-write"))
              if n]
    console.print(f"{provider}/{model}: {_money(cost)} for {counts}" + (f" ({', '.join(cached)})" if cached else ""))
    if price is None:
        console.print("  a local provider: calls cost nothing", "dim")
        return EXIT_OK
    per = [f"input ${_per_million(price.input)}", f"output ${_per_million(price.output)}"]
    per += [f"{label} ${_per_million(v)}" for label, v in (("cached input", price.cached_input),
                                                           ("cache write", price.cache_write)) if v is not None]
    console.print(f"  per million tokens: {', '.join(per)}", "dim")
    if price.source or price.date:
        console.print(f"  source: {price.source or '?'}" + (f" (checked {price.date})" if price.date else ""), "dim")
    return EXIT_OK


# -- check ----------------------------------------------------------------------------------------------


class Problem:
    """One finding of `check`, printed like a compiler: ``file:line: key: message``."""

    __slots__ = ("file", "key", "line", "message", "warning")

    def __init__(self, file: str | None, line: int | None, key: str | None, message: str,
                 warning: bool = False) -> None:
        self.file, self.line, self.key, self.message, self.warning = file, line, key, message, warning

    @classmethod
    def of(cls, exc: ProviderFileError) -> Problem:
        return cls(exc.file, exc.line, exc.key, exc.message)

    def format(self) -> str:
        where = _show_path(self.file) + (f":{self.line}" if self.line is not None else "")
        message = f"warning: {self.message}" if self.warning else self.message
        return f"{where}: {self.key}: {message}" if self.key else f"{where}: {message}"


_SAMPLE_SCHEMA = {"title": "Answer", "type": "object", "properties": {"answer": {"type": "string"}},
                  "required": ["answer"], "additionalProperties": False}


def _samples(spec: ProviderSpec) -> Iterator[CompletionRequest]:
    """Requests that exercise every branch of the usual templates: system text, options, schema, extra."""
    from .types import CompletionRequest

    first = spec.default_model or (spec.models[0].id if spec.models else "example-model")
    with_options = [m.id for m in spec.models if m.options and m.id != first]
    for model in [first, *with_options]:
        yield CompletionRequest(messages=[{"role": "user", "content": "Hello"}], model=model)
    yield CompletionRequest(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}],
        model=first, temperature=0.2, max_tokens=64)
    yield CompletionRequest(messages=[{"role": "user", "content": "Capital of France?"}], model=first,
                            output_schema=_SAMPLE_SCHEMA, extra={"seed": 1})


class Checker:
    """Checks provider and pricing files, finding every broken file instead of stopping at the first.

    Each provider file is checked in the context the engine would load it in
    (bundled providers, the user folders, and the file's own folder), as the top
    definition of its name: validated, compiled, and used to render sample
    requests; listed paid models without a price are warnings.
    """

    def __init__(self, settings: Settings, folders: Sequence[Path]) -> None:
        from .loader import provider_files

        self.settings = settings
        self.sources: dict[Path, ProviderSource | ProviderFileError] = {}
        self.found: dict[str, list[ProviderSource]] = {}
        for folder in folders:
            for path in provider_files(folder):
                self.read(path)
        self._prices: PriceTable | None = None

    def read(self, path: Path) -> ProviderSource | ProviderFileError:
        from .errors import ProviderFileError
        from .loader import read_source

        key = path.resolve()
        if key not in self.sources:
            try:
                source = read_source(path)
            except ProviderFileError as exc:
                self.sources[key] = exc
            else:
                self.found.setdefault(source.name, []).append(source)
                self.sources[key] = source
        return self.sources[key]

    @property
    def prices(self) -> PriceTable:
        """Every price that loads; broken pricing files are reported by `pricing_file`."""
        if self._prices is None:
            from .errors import ProviderFileError
            from .pricing import PriceTable

            for user_file, bundled in ((self.settings.pricing_file, None), (None, None), (None, Path(os.devnull))):
                try:
                    self._prices = PriceTable(user_file, bundled)
                    break
                except ProviderFileError:
                    continue
            assert self._prices is not None
        return self._prices

    def provider_file(self, path: Path) -> list[Problem]:
        from .errors import ConfigError, ProviderFileError

        source = self.read(path)
        if isinstance(source, ProviderFileError):
            return [Problem.of(source)]
        layers = self.found[source.name]
        found = {**self.found, source.name: layers[:next(i for i, s in enumerate(layers) if s is source) + 1]}
        registry = _snapshot(found, self.settings)
        try:
            compiled = registry.compiled(source.name)
        except ProviderFileError as exc:
            return [Problem.of(exc)]
        except ConfigError as exc:
            return [Problem(str(path), None, None, _one_line(exc))]
        return [*self._backend(compiled), *self._render(compiled), *self._unpriced(compiled)]

    def _backend(self, compiled: CompiledProvider) -> list[Problem]:
        # find_spec locates the module without running it: checking never executes user code.
        import importlib.util

        from .loader import locate

        if compiled.spec.backend is None:
            return []
        module = compiled.spec.backend.partition(":")[0]
        try:
            exists = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            exists = False
        if exists:
            return []
        file, line = locate(compiled.chain, ["backend"])
        return [Problem(file, line, "backend", f"cannot find Python module {module!r}")]

    def _render(self, compiled: CompiledProvider) -> list[Problem]:
        from pydantic import SecretStr

        from .errors import ConfigError, TemplateRenderError
        from .render import prepare, render

        spec = compiled.spec
        if spec.backend is not None or spec.request is None:
            return []
        config = {key: var.default or f"example-{key}" for key, var in spec.config.items()}
        settings = self.settings.model_copy(update={
            "api_keys": {spec.name: SecretStr("sk-check")}, "provider_config": {spec.name: config}})
        try:
            prepared = prepare(compiled, settings)
            for request in _samples(spec):
                for stream in (False, True):
                    render(prepared, request, stream)
        except TemplateRenderError as exc:
            return [_render_problem(exc, compiled)]
        except ConfigError as exc:
            return [Problem(compiled.file, None, None, _one_line(exc))]
        return []

    def _unpriced(self, compiled: CompiledProvider) -> list[Problem]:
        from .loader import locate

        spec = compiled.spec
        if spec.local:
            return []
        problems = []
        for i, model in enumerate(spec.models):
            if self.prices.price(spec.name, model.id, spec.pricing) is None:
                file, line = locate(compiled.chain, ["models", i])
                problems.append(Problem(file, line, f"models.{i}", (
                    f"no price for paid model {model.id!r}: add it to pricing.yaml, GENAI_PRICING_FILE or this "
                    "file's 'pricing' (or set 'local: true')"), warning=True))
        return problems

    def pricing_file(self, path: Path, known: Iterable[str]) -> list[Problem]:
        from .errors import ProviderFileError
        from .loader import ProviderSource, line_of, read_yaml
        from .pricing import load_pricing_file

        try:
            table = load_pricing_file(path)
        except ProviderFileError as exc:
            return [Problem.of(exc)]
        names = set(known)
        unknown = [provider for provider in table if provider not in names]
        if not unknown:
            return []
        data, text = read_yaml(path)
        source = ProviderSource("<pricing>", path, data, text)
        return [Problem(str(path), line_of(source, [provider]), provider,
                        "prices for a provider that no provider file defines", warning=True) for provider in unknown]


def _snapshot(found: dict[str, list[ProviderSource]], settings: Settings) -> Registry:
    """A registry over sources already read (so one broken file does not hide the others)."""
    from .registry import Registry

    return Registry(settings, found=found)


def _render_problem(exc: TemplateRenderError, compiled: CompiledProvider) -> Problem:
    """Where a template failed: render errors read ``<file>: <key>: <message>``."""
    import re

    from .loader import locate

    text = str(exc).removeprefix(f"{compiled.file}: ")
    match = re.match(r"([A-Za-z_][\w.-]*)(?:: | )(.*)", text, re.S)
    if match is None:
        return Problem(compiled.file, None, None, text)
    key, message = match.groups()
    file, line = locate(compiled.chain, key.split("."))
    return Problem(file, line, key, f"{message} (rendering a sample request)")


def _check_targets(args: argparse.Namespace, settings: Settings) -> tuple[list[Path], list[Path], list[Path]]:
    """(folders to load, provider files, pricing files) for `check`."""
    from .loader import bundled_path, provider_files

    folders = [bundled_path("providers.d"), *settings.providers_path]
    if not args.files and not args.pricing:
        providers = [path for folder in folders for path in provider_files(folder)]
        pricing = [bundled_path("pricing.yaml"), *([settings.pricing_file] if settings.pricing_file else [])]
        return folders, providers, pricing
    providers, pricing = [], [Path(p) for p in args.pricing or []]
    for name in args.files:
        path = Path(name)
        if path.is_dir():
            providers += provider_files(path)
        elif not path.is_file():
            raise UsageError(f"{name}: no such file or folder")
        elif "pricing" in path.name:
            pricing.append(path)
        else:
            providers.append(path)
    for path in pricing:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    resolved = {folder.resolve() for folder in folders if folder.exists()}
    for parent in dict.fromkeys(path.parent for path in providers):
        if parent.resolve() not in resolved:
            folders.append(parent)
            resolved.add(parent.resolve())
    return folders, providers, pricing


def cmd_check(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    folders, providers, pricing = _check_targets(args, settings)
    checker = Checker(settings, folders)
    for path in providers:  # files outside the folders (another extension) still take part
        checker.read(path)
    reported: set[str] = set()
    errors = warnings = 0
    results = [(path, checker.provider_file(path)) for path in providers]
    results += [(path, checker.pricing_file(path, checker.found)) for path in pricing]
    for path, problems in results:
        if not problems:
            console.print(f"{_show_path(path)}: {console.paint('ok', 'green')}")
        for problem in problems:
            line = problem.format()
            if line in reported:  # a broken parent file shows once, not once per child
                continue
            reported.add(line)
            errors += not problem.warning
            warnings += problem.warning
            console.print(line, "yellow" if problem.warning else "red")
    files = f"{len(providers)} provider file{'s' * (len(providers) != 1)}"
    files += f" and {len(pricing)} pricing file{'s' * (len(pricing) != 1)}" if pricing else ""
    summary = f"checked {files}: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    console.print(summary, "bold" if errors else "dim")
    return EXIT_FAILED if errors else EXIT_OK


# -- schema, docs ---------------------------------------------------------------------------------------


def _compare(path: Path, expected: str, fix: str, console: Console) -> int:
    try:
        current = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    if current == expected:
        console.print(f"{_show_path(path)}: up to date")
        return EXIT_OK
    console.error(f"{_show_path(path)} is out of date; run: {fix}")
    return EXIT_FAILED


def _write(path: Path, text: str, console: Console) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        console.note(f"{_show_path(path)}: up to date")
    else:
        path.write_text(text, encoding="utf-8")
        console.note(f"wrote {_show_path(path)}")
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
        generated = providers_table(_registry(_settings(args)))
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


def wire_format(registry: Registry, name: str) -> str | None:
    """The local server's wire format a provider speaks, or None.

    The format is the root of the provider's ``extends`` chain when that is
    openai, anthropic or ollama; otherwise it is read from the end of the
    request path (``/chat/completions``, ``/messages``, ``/api/chat``).
    Python backends and other formats have none.
    """
    spec = registry.spec(name)
    if spec.backend is not None or spec.request is None:
        return None
    root = registry.chain(name)[-1].name
    if root in WIRE_PREFIX:
        return root
    path = spec.request.path.rstrip("/")
    return next((fmt for suffix, fmt in WIRE_PATHS.items() if path.endswith(suffix)), None)


def local_base_url(server_url: str, fmt: str, request_path: str) -> str:
    """The base URL that makes a provider's requests reach the local server's route for its format."""
    return server_url + ("" if request_path.startswith(SERVER_ROUTES) else WIRE_PREFIX[fmt])


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    import asyncio

    from .localserver import LocalServer
    from .registry import Registry

    settings = _settings(args)
    registry = Registry(settings)
    names = args.provider or registry.names()
    for name in names:
        registry.chain(name)  # unknown names fail here, before the server starts
    stream = not args.no_stream
    with LocalServer(chunk_size=7, max_seconds=300) as server:
        if not args.json:
            console.print("Offline self-test: each provider runs end to end (request template, HTTP over "
                          "loopback, " + ("stream parsing" if stream else "response parsing") + ", cost)", "bold")
            console.print(f"against the bundled fake server (engine/localserver.py) at {server.base_url}, in "
                          "its own wire format.")
            console.print("Nothing leaves this machine: no real API is called, no key is used, nothing is billed.")
            console.print()
        rows = asyncio.run(_demo_all(registry, settings, server, names, stream))
    if args.json:
        console.print(_json(rows))
    else:
        _demo_table(rows, console)
    failed = sum(row["result"] == "fail" for row in rows)
    return EXIT_FAILED if failed else EXIT_OK


async def _demo_all(registry: Registry, settings: Settings, server: LocalServer, names: Sequence[str],
                    stream: bool) -> list[dict[str, Any]]:
    from pydantic import SecretStr

    from .errors import ConfigError

    rows: list[dict[str, Any]] = []
    plans: dict[str, str] = {}
    base_urls: dict[str, str] = {}
    config: dict[str, dict[str, str]] = {}
    for name in names:
        row: dict[str, Any] = {"provider": name, "format": "-", "model": None, "result": "skipped", "text": "",
                               "input_tokens": None, "output_tokens": None, "cost_usd": None, "latency_ms": None,
                               "error": None}
        rows.append(row)
        try:
            fmt = wire_format(registry, name)
        except ConfigError as exc:
            row.update(result="fail", error=_one_line(exc))
            continue
        spec = registry.spec(name)
        if fmt is None:
            row["error"] = "python backend: no local wire format" if spec.backend else "no local wire format"
            continue
        assert spec.request is not None
        row["format"] = fmt
        plans[name] = fmt
        base_urls[name] = local_base_url(server.base_url, fmt, spec.request.path)
        config[name] = {key: var.default or f"demo-{key}" for key, var in spec.config.items()}
    demo_settings = settings.model_copy(update={
        "api_keys": {name: SecretStr("demo-key") for name in plans}, "base_urls": base_urls,
        "provider_config": config, "max_retries": 0, "timeout": 10.0,
    })
    for row in rows:
        if row["provider"] in plans:
            try:
                await _demo_one(registry, demo_settings, server, row, stream)
            except Exception as exc:  # one broken provider must not hide the others
                row.update(result="fail", error=_one_line(exc))
    return rows


async def _demo_one(registry: Registry, settings: Settings, server: LocalServer, row: dict[str, Any],
                    stream: bool) -> None:
    from .provider import HTTPProvider
    from .types import CompletionRequest

    name = row["provider"]
    spec = registry.spec(name)
    model = spec.default_model or (spec.models[0].id if spec.models else "local-model")
    row["model"] = model
    provider = registry.create(name, settings=settings)
    assert isinstance(provider, HTTPProvider)
    try:
        request = CompletionRequest(messages=[{"role": "user", "content": f"Hello {name}, this is the demo."}],
                                    model=model, max_tokens=64, stream=stream)
        expected = server.reply_for(provider.render(request).json)
        if stream:
            result = provider.stream_complete(request)
            text = "".join([delta async for delta in result])
            response = result.response
            assert response is not None
        else:
            response = await provider.complete(request)
            text = response.content
    finally:
        await provider.close()
    row.update(text=text, input_tokens=response.input_tokens, output_tokens=response.output_tokens,
               cost_usd=response.cost_usd, latency_ms=response.latency_ms)
    if not response.success:
        row.update(result="fail", error=f"{response.error_kind}: {response.error}")
    elif text != expected or response.content != expected:
        row.update(result="fail", error=f"expected {expected!r}, got {text!r}")
    else:
        row["result"] = "ok"


def _demo_table(rows: Sequence[dict[str, Any]], console: Console) -> None:
    styles = {"ok": "green", "fail": "red", "skipped": "dim"}
    table: list[list[Cell]] = []
    for row in rows:
        text = row["text"] if row["result"] == "ok" else row["error"] or ""
        text = text if len(text) <= 60 else text[:59] + "…"
        tokens = ("-" if row["input_tokens"] is None and row["output_tokens"] is None
                  else f"{_count(row['input_tokens'])} / {_count(row['output_tokens'])}")
        cost = "-" if row["cost_usd"] is None else _money(row["cost_usd"])
        time = "-" if row["latency_ms"] is None else f"{row['latency_ms']:,.0f} ms"
        table.append([row["provider"], row["format"], (row["result"], styles[row["result"]]), tokens, cost, time,
                      (text, "" if row["result"] == "ok" else styles[row["result"]])])
    console.table(["PROVIDER", "FORMAT", "RESULT", "TOKENS IN/OUT", "COST", "TIME", "REPLY"], table,
                  right=[3, 4, 5])
    counts = {kind: sum(row["result"] == kind for row in rows) for kind in styles}
    console.print()
    console.print(f"{counts['ok']} ok, {counts['fail']} failed, {counts['skipped']} skipped "
                  "(their wire format is not one the local server speaks)",
                  "red" if counts["fail"] else "green")


# -- the parser -----------------------------------------------------------------------------------------


class _Formatter(argparse.HelpFormatter):
    """Wraps description paragraphs to the terminal; indented lines (examples, tables) keep their layout."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        lines: list[str] = []
        for line in text.splitlines():
            if line.startswith(" ") or not line:
                lines.append(indent + line)
            else:
                lines += textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent)
        return "\n".join(lines)


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    """Options every command takes, before or after its name."""
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--debug", action="store_true", default=default(False),
                        help="show the full traceback of an error")
    parser.add_argument("--no-color", action="store_true", default=default(False),
                        help="no colours (also: NO_COLOR=1; colours are only used on a terminal)")
    parser.add_argument("-P", "--providers-path", action="append", metavar="DIR", default=default(None),
                        help="also read provider files from DIR (repeatable; after GENAI_PROVIDERS_PATH)")


def _call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", nargs="*", metavar="PROMPT",
                        help="the prompt (words are joined); read from stdin when absent or '-'")
    parser.add_argument("-m", "--model", metavar="PROVIDER/MODEL",
                        help="e.g. openai/gpt-4o-mini; a bare provider name uses its default model "
                             "(default: GENAI_DEFAULT_MODEL)")
    parser.add_argument("-s", "--system", metavar="TEXT", help="a system prompt")
    parser.add_argument("-t", "--temperature", type=float, metavar="T", help="sampling temperature (default 0.7)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="most output tokens")
    parser.add_argument("--schema", metavar="FILE", help="JSON Schema (JSON or YAML file): ask for JSON output")
    parser.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                        help="a provider-specific body field, e.g. -o top_p=0.9 (value read as JSON if it parses)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="genai", formatter_class=_Formatter,
        description="Call any LLM provider from the terminal, and check, inspect and try provider files.\n"
                    "Every command has --help with examples.",
        epilog="examples:\n"
               "  genai demo                                   offline self-test of every provider\n"
               "  genai complete -m openai/gpt-4o-mini \"Hi\"    stream a reply; tokens, cost, time on stderr\n"
               "  genai providers                              providers, their key variables, stream formats\n"
               "  genai check my-providers/acme.yaml           validate a provider file\n"
               "  genai render -m anthropic \"Hi\"               the exact HTTP request, not sent\n\n"
               + ENVIRONMENT + "\n" + EXIT_CODES)
    _common(parser, top=True)
    parser.add_argument("--version", action="version", version=f"genai {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    common = argparse.ArgumentParser(add_help=False)
    _common(common, top=False)

    def command(name: str, run: Any, summary: str, description: str, examples: str,
                aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, aliases=list(aliases), parents=[common], help=summary,
                                  description=description, epilog="examples:\n" + examples,
                                  formatter_class=_Formatter)
        sub.set_defaults(run=run)
        return sub

    sub = command(
        "complete", cmd_complete, "send a prompt to a model and print the reply",
        "Send a prompt to any model. The reply streams to stdout; model, tokens, cost and latency follow on "
        "stderr.\n\n--json prints the whole unified response instead (for scripts). Exit code 1 when the call "
        "fails.",
        "  genai complete -m openai/gpt-4o-mini \"Write a haiku about YAML\"\n"
        "  echo \"Summarise: ...\" | genai complete -m anthropic/claude-haiku-4-5\n"
        "  genai chat -m groq -s \"Answer in French\" \"Hello\"\n"
        "  genai complete -m openai/gpt-4.1-mini --schema city.json \"Largest city in France?\" --json | "
        "jq -r .content\n"
        "  genai complete -m ollama/llama3.2 -t 0 -o seed=42 --no-stream \"Hi\"",
        aliases=["chat"])
    _call_arguments(sub)
    sub.add_argument("--no-stream", action="store_true", help="one plain call instead of a stream")
    sub.add_argument("--json", action="store_true", help="print the whole unified response as JSON")

    sub = command(
        "providers", cmd_providers, "list providers; 'providers show NAME' prints one resolved file",
        "List every provider (bundled and from GENAI_PROVIDERS_PATH): models, default model, the env variable "
        "of its API key and whether it is set, and its stream format.",
        "  genai providers\n  genai providers --json | jq -r '.[].name'\n  genai providers show groq\n"
        "  genai providers show groq --defaults")
    sub.add_argument("--json", action="store_true", help="print JSON")
    shows = sub.add_subparsers(dest="providers_command", title="subcommands", metavar="show")
    show = shows.add_parser("show", parents=[common], formatter_class=_Formatter,
                            help="print a provider file as the engine reads it ('extends' resolved)",
                            description="Print a provider file as the engine reads it: its 'extends' chain "
                                        "merged, keys in the reference order.",
                            epilog="examples:\n  genai providers show groq\n  genai providers show anthropic "
                                   "--defaults --json")
    show.add_argument("name", metavar="NAME", help="provider name")
    show.add_argument("--defaults", action="store_true", help="also show the keys left at their defaults")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")

    sub = command(
        "models", cmd_models, "list models with prices and context windows",
        "List every model of every provider (or of the given providers) with context window, output limit "
        "and price (USD per million tokens).",
        "  genai models\n  genai models openai anthropic\n  genai models --json | jq '.[] | "
        "select(.price == null)'")
    sub.add_argument("providers", nargs="*", metavar="PROVIDER", help="only these providers")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "check", cmd_check, "validate provider and pricing files (errors as file:line: key: message)",
        "Validate provider files and pricing files the way the engine loads them: YAML, keys and types, "
        "'extends', templates and JSONPath (compiled, and rendered for sample requests). Problems print like "
        "a compiler's, as file:line: key: message. Listed paid models without a price are warnings.\n\n"
        "Without FILES: every bundled and GENAI_PROVIDERS_PATH provider file, pricing.yaml and "
        "GENAI_PRICING_FILE. A file whose name contains 'pricing' is checked as a pricing file. A provider "
        "file is checked with its own folder loaded, so 'extends' finds its neighbours.\n\n"
        "Exit code 1 when there is an error.",
        "  genai check\n  genai check my-providers/acme.yaml\n  genai check my-providers/\n"
        "  genai check --pricing my-prices.yaml")
    sub.add_argument("files", nargs="*", metavar="FILE", help="provider files, pricing files or folders")
    sub.add_argument("--pricing", action="append", metavar="FILE", help="check FILE as a pricing file")

    sub = command(
        "render", cmd_render, "print the exact HTTP request a call would send, without sending it",
        "Print the HTTP request a call would send: method, URL, headers (API key shown as ***) and the "
        "body, pretty-printed. Nothing is sent. Without an API key a placeholder is used.",
        "  genai render -m openai/gpt-4o-mini \"Hello\"\n  genai render -m anthropic -s \"Be brief\" --stream "
        "\"Hello\"\n  genai render -m groq --schema city.json --json \"Largest city?\" | jq .body")
    _call_arguments(sub)
    sub.add_argument("--stream", action="store_true", help="render the streamed variant of the call")
    sub.add_argument("--json", action="store_true", help="print method, url, headers and body as JSON")

    sub = command(
        "cost", cmd_cost, "the price of given token counts for a model",
        "Compute the exact cost of token counts with the engine's prices. INPUT_TOKENS counts every input "
        "token, cached ones included.",
        "  genai cost openai/gpt-4o-mini 1000 500\n  genai cost anthropic/claude-sonnet-4-5 20000 800 "
        "--cached 15000\n  genai cost groq 1000000 1000000 --json")
    sub.add_argument("model", metavar="PROVIDER/MODEL")
    sub.add_argument("input_tokens", type=int, metavar="INPUT_TOKENS")
    sub.add_argument("output_tokens", type=int, metavar="OUTPUT_TOKENS")
    sub.add_argument("--cached", type=int, default=0, metavar="N", help="input tokens read from the cache")
    sub.add_argument("--cache-write", type=int, default=0, metavar="N", help="input tokens written to the cache")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "pricing", cmd_pricing, "the price table (USD per million tokens)",
        "Print every known price after precedence: a provider file's own 'pricing' < the bundled pricing.yaml "
        "< GENAI_PRICING_FILE.",
        "  genai pricing\n  genai pricing anthropic\n  GENAI_PRICING_FILE=my-prices.yaml genai pricing --json")
    sub.add_argument("providers", nargs="*", metavar="PROVIDER", help="only these providers")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "schema", cmd_schema, "the JSON Schema of provider files (for editors)",
        "Print the JSON Schema of the provider-file format, generated from the engine's models. Point your "
        "editor at it: the YAML language server reads a first line\n"
        "  # yaml-language-server: $schema=<path or URL of the schema>",
        "  genai schema -o my-providers/provider.schema.json\n  genai schema --check schema/provider.schema.json")
    group = sub.add_mutually_exclusive_group()
    group.add_argument("-o", "--output", metavar="FILE", help="write the schema to FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 if FILE differs from the generated schema")

    sub = command(
        "docs", cmd_docs, "the provider-file key reference, or the providers table (markdown)",
        "Print the key reference of the provider-file format, generated from the engine's models (or with "
        "--providers the table of providers, generated from their files and prices), or update the generated "
        "part of a markdown file (between its BEGIN/END GENERATED markers).",
        "  genai docs | less\n  genai docs --write docs/provider-format.md\n"
        "  genai docs --check docs/provider-format.md\n  genai docs --providers --write README.md")
    sub.add_argument("--providers", action="store_true", help="the providers table instead of the key reference")
    group = sub.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="update the generated part of FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 if the generated part of FILE is out of date")

    sub = command(
        "demo", cmd_demo, "offline self-test: every provider against the bundled local server",
        "Offline self-test. Starts the bundled fake server (engine/localserver.py) on 127.0.0.1 and runs "
        "every provider whose wire format it speaks (OpenAI, Anthropic, Ollama, Gemini, Cohere) end to end through the "
        "engine: request template, real HTTP over loopback, stream parsing, cost. Checks each reply against "
        "what the server sent and prints a table. No network, no API keys, no cost. Providers in other "
        "formats (and Python backends) are listed as skipped. Exit code 1 when a provider fails.",
        "  genai demo\n  genai demo --provider groq --provider anthropic\n  genai demo --no-stream --json")
    sub.add_argument("--provider", action="append", metavar="NAME", help="only this provider (repeatable)")
    sub.add_argument("--no-stream", action="store_true", help="plain calls instead of streams")
    sub.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


# -- entry point ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(color=not args.no_color)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return int(args.run(args, console))
    except KeyboardInterrupt:
        console.print("interrupted", "yellow", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`genai models | head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        return _report(exc, args, console)


def _report(exc: Exception, args: argparse.Namespace, console: Console) -> int:
    from .errors import ConfigError, EngineError

    if args.debug:
        import traceback

        traceback.print_exception(exc, file=console.err)
    if isinstance(exc, UsageError | ConfigError):
        console.error(_one_line(exc))
        return EXIT_USAGE
    message = _one_line(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {_one_line(exc)}"
    console.error(message + ("" if args.debug else " (run with --debug for the traceback)"))
    return EXIT_FAILED
