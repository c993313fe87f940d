"""The registry: which providers exist, their validated specs, compiled forms and prices.

Discovery reads the bundled ``providers.d/`` and then the user folders of
``GENAI_PROVIDERS_PATH`` (later ones override earlier ones by name). Specs are
validated and compiled on first use and cached.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._env import env
from .errors import ProviderFileError, UnknownProviderError
from .loader import Discovery, ProviderSource, bundled_path, discover, locate, merged_data, resolve_chain

if TYPE_CHECKING:
    import httpx

    from .compiled import CompiledProvider
    from .pricing import PriceTable
    from .provider import LLMProvider
    from .settings import Settings
    from .spec import ProviderSpec


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from .settings import Settings

    return Settings()


class Registry:
    """Providers found in the bundled folder plus the settings' folders."""

    def __init__(self, settings: Settings | None = None, *, folders: list[Path] | None = None,
                 found: dict[str, list[ProviderSource]] | None = None) -> None:
        """``found``: provider files already read (by name, in precedence order), instead of ``folders``."""
        self._settings = settings
        self._folders = folders
        self._discovery = Discovery(found=found) if found is not None else None
        self._specs: dict[str, ProviderSpec] = {}
        self._compiled: dict[str, CompiledProvider] = {}
        self._prices: PriceTable | None = None
        self._owners: tuple[dict[str, set[str]], dict[str, set[str]]] | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = _settings(None)
        return self._settings

    @property
    def folders(self) -> list[Path]:
        if self._folders is None:
            self._folders = [bundled_path("providers.d"), *self.settings.providers_path]
        return self._folders

    @property
    def discovery(self) -> Discovery:
        """What the folders hold, broken files and overrides included."""
        if self._discovery is None:
            self._discovery = discover(self.folders)
        return self._discovery

    @property
    def found(self) -> dict[str, list[ProviderSource]]:
        return self.discovery.found

    def names(self) -> list[str]:
        """Every provider name, sorted (providers whose file is broken included: using one raises its error)."""
        return self.discovery.names()

    def __contains__(self, name: str) -> bool:
        return name in self.discovery.found or name in self.discovery.broken

    def chain(self, name: str) -> list[ProviderSource]:
        if name in self.discovery.broken:
            raise self.discovery.broken[name]
        if name not in self.found:
            raise UnknownProviderError(
                f"unknown provider {name!r}; known providers: {', '.join(self.names())}"
                " (add a YAML file to a folder in GENAI_PROVIDERS_PATH to define it)", name=name,
            )
        return resolve_chain(name, self.found)

    def spec(self, name: str) -> ProviderSpec:
        """The validated spec of a provider (``extends`` applied)."""
        if name not in self._specs:
            from pydantic import ValidationError

            from .spec import ProviderSpec

            chain = self.chain(name)
            try:
                spec = ProviderSpec.model_validate(merged_data(chain))
            except ValidationError as exc:
                raise _file_error(exc, chain) from None
            for key_path, message in [*spec.problems(), *self._env_problems(spec, chain)]:
                file, line = locate(chain, key_path)
                raise ProviderFileError(message, file=file, key=".".join(map(str, key_path)), line=line)
            self._specs[name] = spec
        return self._specs[name]

    def _key_owners(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """Env variable -> the providers whose files name it as their key (``auth.env``), and -> the providers
        whose bundled files do (bundled files may share a key: two APIs of one vendor)."""
        if self._owners is None:
            owners: dict[str, set[str]] = {}
            bundled: dict[str, set[str]] = {}
            home = bundled_path("providers.d").resolve()
            for provider, layers in self.found.items():
                for layer in layers:
                    auth = layer.data.get("auth")
                    envs = auth.get("env") if isinstance(auth, dict) else None
                    for env in envs if isinstance(envs, list) else []:
                        if not isinstance(env, str):
                            continue
                        if layer is layers[-1]:
                            owners.setdefault(env, set()).add(provider)
                        if layer.path.resolve().parent == home:
                            bundled.setdefault(env, set()).add(provider)
            self._owners = owners, bundled
        return self._owners

    def _env_problems(self, spec: ProviderSpec, chain: list[ProviderSource]) -> list[tuple[tuple[str | int, ...], str]]:
        """The trust rules for the env variables a provider reads (SECURITY.md): never another provider's key;
        from a file outside the bundled folder, never a cloud credential through ``config``."""
        from .spec import env_name
        from .trust import CREDENTIAL_ENV

        bundled = bundled_path("providers.d").resolve()
        user_file = chain[0].path.resolve().parent != bundled
        problems: list[tuple[tuple[str | int, ...], str]] = []
        owners, bundled_owners = self._key_owners()
        reads: list[tuple[tuple[str | int, ...], str]] = [(("auth", "env", i), e) for i, e in enumerate(spec.auth.env)]
        reads += [(("config", key, "env", i), e) for key, var in spec.config.items() for i, e in enumerate(var.env)]
        for key_path, variable in reads:
            sharing = bundled_owners.get(variable, set())
            others = sorted(owners.get(variable, set()) - {spec.name} - (sharing if spec.name in sharing else set()))
            if others:
                problems.append((key_path, f"{variable} is the API key of provider {others[0]!r}; a provider file may "
                                           f"not read another provider's key (use {env_name(spec.name, 'API_KEY')})"))
            elif user_file and key_path[0] == "config" and CREDENTIAL_ENV.match(variable):
                problems.append((key_path, f"{variable} holds cloud credentials; a provider file may not read it "
                                           "through config (SECURITY.md)"))
        return problems

    def compiled(self, name: str) -> CompiledProvider:
        """The provider with templates and JSONPath compiled (once)."""
        if name not in self._compiled:
            from .compiled import compile_provider

            self._compiled[name] = compile_provider(self.spec(name), self.chain(name))
        return self._compiled[name]

    @property
    def prices(self) -> PriceTable:
        if self._prices is None:
            from .pricing import PriceTable

            self._prices = PriceTable(self.settings.pricing_file)
        return self._prices

    def create(self, name: str, *, settings: Settings | None = None,
               http_client: httpx.AsyncClient | None = None) -> LLMProvider:
        """A new provider instance; it owns its connections unless ``http_client`` is given."""
        compiled = self.compiled(name)
        settings = settings or self.settings
        if compiled.spec.backend is not None:
            from .backend import BackendProvider

            return BackendProvider(compiled, settings, self.prices)
        from .provider import HTTPProvider

        return HTTPProvider(compiled, settings, self.prices, http_client=http_client)


def _file_error(exc: Any, chain: list[ProviderSource]) -> ProviderFileError:
    error = exc.errors()[0]
    loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    file, line = locate(chain, loc)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (not part of the provider-file format)"
    elif error["type"] == "missing":
        message = "missing required key"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return ProviderFileError(message, file=file, key=".".join(map(str, loc)) or None, line=line)


_DEFAULT: dict[tuple[Any, ...], Registry] = {}


def default_registry(settings: Settings | None = None) -> Registry:
    """A registry shared by every caller with the same provider folders and pricing file."""
    if settings is None:
        # Read without building `Settings`: listing providers must not pay for pydantic-settings.
        paths = [Path(p) for p in (env("GENAI_PROVIDERS_PATH") or "").split(os.pathsep) if p]
        pricing = env("GENAI_PRICING_FILE")
        key: tuple[Any, ...] = (tuple(paths), Path(pricing) if pricing else None)
    else:
        key = (tuple(settings.providers_path), settings.pricing_file)
    if key not in _DEFAULT:
        _DEFAULT[key] = Registry(settings, folders=[bundled_path("providers.d"), *key[0]])
    return _DEFAULT[key]


def list_providers(settings: Settings | None = None) -> list[str]:
    """Names of every available provider."""
    return default_registry(settings).names()


def get_provider(name: str, settings: Settings | None = None, *,
                 http_client: httpx.AsyncClient | None = None) -> LLMProvider:
    """A ready provider; raises `MissingAPIKeyError` if it needs a key that is not set."""
    settings = _settings(settings)
    return default_registry(settings).create(name, settings=settings, http_client=http_client)
