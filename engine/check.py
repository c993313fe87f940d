"""Check provider and pricing files the way the engine loads them, finding every problem, not just the first.

`check` returns a structured result: one `FileReport` per file, each with its `Problem`\\ s
(file, line, key, message, warning or error). ``genai check`` prints it like a compiler.

Each provider file is checked in the context the engine would load it in (bundled providers,
the user folders, and the file's own folder), as the top definition of its name: validated,
compiled, and used to render sample requests. A Python backend is located but never imported,
so checking never runs code from a provider file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError, ProviderFileError, TemplateRenderError
from .loader import ProviderSource, bundled_path, line_of, locate, provider_files, read_source, read_yaml

if TYPE_CHECKING:
    from .compiled import CompiledProvider
    from .pricing import PriceTable
    from .registry import Registry
    from .settings import Settings
    from .spec import ProviderSpec
    from .types import CompletionRequest


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: where (file, line, key) and what; a warning or a note does not fail the check."""

    file: str | None
    line: int | None
    key: str | None
    message: str
    warning: bool = False
    note: bool = False  # information, such as a file that overrides another by name

    @property
    def error(self) -> bool:
        return not (self.warning or self.note)

    @classmethod
    def of(cls, exc: ProviderFileError, suffix: str = "") -> Problem:
        return cls(exc.file, exc.line, exc.key, exc.message + suffix)

    def format(self, show_path: Callable[[str], str] = str) -> str:
        """``file:line: key: message``, like a compiler; ``show_path`` shortens the file name."""
        shown = show_path(self.file) if self.file else "<provider>"
        where = f"{shown}:{self.line}" if self.line is not None else str(shown)
        message = f"warning: {self.message}" if self.warning else f"note: {self.message}" if self.note else self.message
        return f"{where}: {self.key}: {message}" if self.key else f"{where}: {message}"


@dataclass(slots=True)
class FileReport:
    """The problems of one checked file."""

    path: Path
    kind: Literal["provider", "pricing"]
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.error for p in self.problems)


@dataclass(slots=True)
class CheckResult:
    """Every checked file; a problem shared by several files (a broken parent) is reported once."""

    reports: list[FileReport]

    @property
    def problems(self) -> list[Problem]:
        seen: dict[Problem, None] = {}
        for report in self.reports:
            for problem in report.problems:
                seen.setdefault(problem)
        return list(seen)

    @property
    def errors(self) -> int:
        return sum(p.error for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.warning for p in self.problems)

    @property
    def ok(self) -> bool:
        return self.errors == 0


def check(settings: Settings, paths: Sequence[Path] = (), pricing: Sequence[Path] = ()) -> CheckResult:
    """Check files: ``paths`` are provider files, pricing files (a name containing ``pricing``) or folders.

    With neither ``paths`` nor ``pricing``: every bundled and ``GENAI_PROVIDERS_PATH`` provider file,
    the bundled ``pricing.yaml`` and ``GENAI_PRICING_FILE``. Raises `ConfigError` for a path that does
    not exist.
    """
    folders, provider_paths, pricing_paths = _targets(settings, paths, pricing)
    checker = _Checker(settings, folders)
    for path in provider_paths:  # files outside the folders (another extension) still take part
        checker.read(path)
    reports = [FileReport(path, "provider", checker.provider_file(path)) for path in provider_paths]
    reports += [FileReport(path, "pricing", checker.pricing_file(path, checker.found)) for path in pricing_paths]
    return CheckResult(reports)


def _targets(settings: Settings, paths: Sequence[Path],
             pricing: Sequence[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """(folders to load, provider files, pricing files)."""
    folders = [bundled_path("providers.d"), *settings.providers_path]
    if not paths and not pricing:
        providers = [path for folder in folders for path in provider_files(folder)]
        prices = [bundled_path("pricing.yaml"), *([settings.pricing_file] if settings.pricing_file else [])]
        return folders, providers, prices
    providers, prices = [], list(pricing)
    for path in paths:
        if path.is_dir():
            providers += provider_files(path)
        elif not path.is_file():
            raise ConfigError(f"{path}: no such file or folder")
        elif "pricing" in path.name:
            prices.append(path)
        else:
            providers.append(path)
    for path in prices:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
    resolved = {folder.resolve() for folder in folders if folder.exists()}
    for parent in dict.fromkeys(path.parent for path in providers):
        if parent.resolve() not in resolved:
            folders.append(parent)
            resolved.add(parent.resolve())
    return folders, providers, prices


TINY_PRICE = 0.0001  # USD per million tokens: below any real price (a per-token price is about 1e-6)

SAMPLE_SCHEMA = {"title": "Answer", "type": "object", "properties": {"answer": {"type": "string"}},
                 "required": ["answer"], "additionalProperties": False}


def sample_requests(spec: ProviderSpec) -> Iterator[CompletionRequest]:
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
                            output_schema=SAMPLE_SCHEMA, extra={"seed": 1})


def _rules(compiled: CompiledProvider) -> list[Any]:
    stream = compiled.stream
    if stream is None:
        return []
    return [*stream.events.values(), *([stream.chunk] if stream.chunk else [])]


def module_exists(name: str) -> bool:
    """Whether a module can be found by the import system, without importing it or any package above it.

    Each part is looked up with the finders on ``sys.meta_path`` (path entries, editable installs, zip
    imports), given the search locations of the part above.
    """
    import sys

    search: list[str] | None = None
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        fullname = ".".join(parts[:depth])
        spec = None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            try:
                spec = find_spec(fullname, search)
            except (ImportError, ValueError, AttributeError, TypeError):
                spec = None
            if spec is not None:
                break
        if spec is None:
            return False
        locations = spec.submodule_search_locations
        search = list(locations) if locations is not None else []
    return True


class _Checker:
    def __init__(self, settings: Settings, folders: Sequence[Path]) -> None:
        self.settings = settings
        self.sources: dict[Path, ProviderSource | ProviderFileError] = {}
        self.found: dict[str, list[ProviderSource]] = {}
        self.folder_problems: dict[Path, list[Problem]] = {}
        for folder in folders:
            here: dict[str, Path] = {}
            for path in provider_files(folder):
                source = self.read(path)
                if isinstance(source, ProviderFileError):
                    continue
                if source.name in here:
                    self._note(path, Problem(str(path), line_of(source, ["name"]), "name",
                                             f"{here[source.name].name} in the same folder also defines provider "
                                             f"{source.name!r}; remove or rename one"))
                    continue
                here[source.name] = path
                layers = self.found[source.name]
                if len(layers) > 1:
                    self._note(path, Problem(str(path), line_of(source, ["name"]), "name",
                                             f"overrides provider {source.name!r} of {layers[-2].path}", note=True))
        self._prices: PriceTable | None = None

    def _note(self, path: Path, problem: Problem) -> None:
        self.folder_problems.setdefault(path.resolve(), []).append(problem)

    def read(self, path: Path) -> ProviderSource | ProviderFileError:
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
            from .pricing import PriceTable

            for user_file, bundled in ((self.settings.pricing_file, None), (None, None), (None, Path(os.devnull))):
                try:
                    self._prices = PriceTable(user_file, bundled)
                    break
                except ProviderFileError:
                    continue
            assert self._prices is not None
        return self._prices

    def registry(self, source: ProviderSource) -> Registry:
        """A registry in which ``source`` is the top definition of its name."""
        from .registry import Registry

        layers = self.found[source.name]
        top = next(i for i, s in enumerate(layers) if s is source)
        return Registry(self.settings, found={**self.found, source.name: layers[:top + 1]})

    def provider_file(self, path: Path) -> list[Problem]:
        source = self.read(path)
        if isinstance(source, ProviderFileError):
            return [Problem.of(source)]
        folder = self.folder_problems.get(path.resolve(), [])
        if any(p.error for p in folder):
            return folder
        return [*folder, *self._provider(path, source)]

    def _provider(self, path: Path, source: ProviderSource) -> list[Problem]:
        try:
            compiled = self.registry(source).compiled(source.name)
        except ProviderFileError as exc:
            return [Problem.of(exc)]
        except ConfigError as exc:
            return [Problem(str(path), None, None, " ".join(str(exc).split()))]
        return [*self._backend(compiled), *self._render(compiled), *self._unpriced(compiled)]

    def _backend(self, compiled: CompiledProvider) -> list[Problem]:
        if compiled.spec.backend is None:
            return []
        module = compiled.spec.backend.partition(":")[0]
        if module_exists(module):
            return []
        file, line = locate(compiled.chain, ["backend"])
        return [Problem(file, line, "backend", f"cannot find Python module {module!r}")]

    def _render(self, compiled: CompiledProvider) -> list[Problem]:
        from .render import prepare, render, render_embeddings, with_placeholders
        from .types import EmbeddingRequest

        spec = compiled.spec
        if spec.backend is not None:
            return []
        settings, _ = with_placeholders(spec, self.settings, key="sk-check", force=True)
        try:
            prepared = prepare(compiled, settings)
            if spec.request is not None:
                for request in sample_requests(spec):
                    for stream in (False, True):
                        render(prepared, request, stream)
            if spec.embeddings is not None:
                model = spec.embeddings.default_model or "example-model"
                plain = EmbeddingRequest(inputs=["a", "b"], model=model)
                full = EmbeddingRequest(inputs=["a", "b"], model=model,
                                        dimensions=256 if "dimensions" in spec.embeddings.takes else None,
                                        input_type="query" if "input_type" in spec.embeddings.takes else None)
                for sample in (plain, full):
                    render_embeddings(prepared, sample, sample.inputs, model)
        except TemplateRenderError as exc:
            return [Problem.of(exc, " (rendering a sample request)")]
        except ConfigError as exc:
            return [Problem(compiled.file, None, None, " ".join(str(exc).split()))]
        return []

    def _unpriced(self, compiled: CompiledProvider) -> list[Problem]:
        """Listed paid models without a price, or without a cached price though the replies report cache reads;
        a default model that is retired or deprecated."""
        from .lifecycle import today

        spec = compiled.spec
        problems = []
        day = today()
        if spec.default_model and (info := compiled.lifecycle.get(spec.resolve_alias(spec.default_model))):
            state = info.lifecycle(day)
            if state is not None:
                file, line = locate(compiled.chain, ["default_model"])
                instead = f"; use {info.replacement}" if info.replacement else ""
                problems.append(Problem(file, line, "default_model", f"the default model {info.id!r} is {state} "
                                                                      f"({info.retired or info.deprecated}){instead}",
                                        warning=True))
        if spec.local:
            return problems
        # A model can cache when the replies report cache reads; its cached price is missing, not meant to be the
        # input rate, when the provider's other models have one.
        reads_cache = "cached_input_tokens" in compiled.response or any(
            name == "cached_input_tokens" for rule in _rules(compiled) for name, _ in rule.fields)
        prices = [self.prices.quote(spec, model.id).price for model in spec.models]
        reads_cache = reads_cache and any(p is not None and p.cached_input is not None for p in prices)
        for i, model in enumerate(spec.models):
            if model.lifecycle(day) == "retired" and model.retired_calls == "fail":
                continue  # calls fail before sending: nothing to price
            file, line = locate(compiled.chain, ["models", i])
            quote = self.prices.quote(spec, model.id)
            if not quote.known:
                why = self.prices.problem(spec.name, model.id, spec.pricing)
                problems.append(Problem(file, line, f"models.{i}", (
                    f"no price for paid model {model.id!r}: add it to pricing.yaml, GENAI_PRICING_FILE or this "
                    "file's 'pricing' (or set 'local: true')" + (f"; its override does not merge: {why}" if why
                                                                else "")), warning=True))
            elif quote.price is None:
                problems.append(Problem(file, line, f"models.{i}", (
                    f"no price of {model.id!r} is in effect today: its periods ('from'/'until') end before or start "
                    "after today"), warning=True))
            elif reads_cache and quote.price.cached_input is None and model.prompt_caching is not False and \
                    model.kind != "embedding":  # embeddings read no prompt cache
                problems.append(Problem(file, line, f"models.{i}", (
                    f"{model.id!r} can read from the prompt cache (its replies report cached tokens, and other "
                    "models of the provider have a cached price) but has no 'cached_input' price, so cache reads "
                    "cost the full input rate; add it (or set 'prompt_caching: false' on the model)"),
                    warning=True))
        return problems

    def pricing_file(self, path: Path, known: Iterable[str]) -> list[Problem]:
        from .pricing import load_pricing_file

        try:
            table = load_pricing_file(path)
        except ProviderFileError as exc:
            return [Problem.of(exc)]
        names = set(known)
        data, text = read_yaml(path)
        source = ProviderSource("<pricing>", path, data, text)
        problems = [Problem(str(path), line_of(source, [provider]), provider,
                            "prices for a provider that no provider file defines", warning=True)
                    for provider in table if provider not in names]
        for provider, models in table.items():
            for model, price in models.items():
                tiny = [name for name, value in price.rates().items() if 0 < value < TINY_PRICE]
                if tiny:
                    problems.append(Problem(str(path), line_of(source, [provider, model, tiny[0]]),
                                            f"{provider}.{model}.{tiny[0]}", (
                        f"{price.rates()[tiny[0]]} USD per million tokens is less than any provider charges: "
                        "is it a price per token? Prices are per million tokens"), warning=True))
        return problems
