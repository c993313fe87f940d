"""Putting a gateway together from its configuration: engine settings, the router, keys, ledger and limits.

`check` validates everything that can be checked without serving (keys in their env variables, every route's
deployments and their provider keys, the providers listed), so ``genai serve`` fails before binding a port;
`open_state` builds the parts in a worker. With ``GENAI_REDIS_URL`` (or ``state.redis_url``) budgets, rate
limits and cooldowns live in Redis, shared by every replica; otherwise in the ledger's SQLite file, shared by the
replica's workers. The ledger itself is always the replica's own SQLite file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..client import Engine
    from ..router import Cooldowns
    from ..settings import Settings
    from .config import GatewayConfig
    from .keys import Keyring
    from .ledger import Ledger
    from .limits import Limits


def engine_settings(config: GatewayConfig) -> Settings:
    """The engine's settings: the environment as usual, with the file's ``settings`` on top."""
    from ..settings import Settings

    try:
        return Settings(**config.settings)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"{config.path or 'gateway config'}: settings.{where}: {error['msg']}") from None


def build_engine(config: GatewayConfig, cooldowns: Cooldowns | None = None) -> Engine:
    """The engine with the config's routes (cooldowns in ``cooldowns``: memory when not given)."""
    from ..client import Engine
    from ..router import Router

    settings = engine_settings(config)
    router = Router(config.routes, cooldowns=cooldowns, env=settings.env) if config.routes else None
    return Engine(settings, routes=router)


def exposed_providers(engine: Engine, config: GatewayConfig) -> set[str]:
    """Providers callable as ``provider/model``: the config's list, else every HTTP provider whose key is set (a
    local one, whose key is optional, when its base URL is set)."""
    if config.providers is not None:
        return set(config.providers)
    from ..spec import env_name

    settings = engine.settings
    names = set()
    for name in engine.registry.names():
        try:
            spec = engine.registry.spec(name)
        except ConfigError:
            continue
        if spec.backend is not None or spec.auth.type == "hook":
            continue  # credential chains and hooks: list them in `providers` to serve them
        keyless = spec.auth.type == "none" or spec.auth.optional
        if settings.key_source(name, spec.key_env) is not None or (keyless and (
                name in settings.base_urls or settings.env(env_name(name, "BASE_URL")))):
            names.add(name)
    return names


def check(config: GatewayConfig, engine: Engine | None = None) -> Engine:
    """Raise `ConfigError` for anything that would fail at call time: keys, deployments, provider keys."""
    from .keys import Keyring

    engine = engine or build_engine(config)
    Keyring(config.keys, engine.settings.env)
    for name in config.providers or ():
        if name not in engine.registry:
            raise ConfigError(f"{config.path or 'gateway config'}: providers: no provider named {name!r}")
        engine.provider(name)
    router = engine.router
    for route in router.routes.values() if router is not None else ():
        for deployment in route.deployments:
            options = router.deployment_options(deployment)  # type: ignore[union-attr]
            if "api_key" not in options:
                engine.provider(deployment.model.partition("/")[0])  # raises MissingAPIKeyError without a key
    return engine


async def open_state(config: GatewayConfig) -> tuple[Engine, Keyring, Ledger, Limits]:
    """The engine, keys, ledger and limits of one worker process."""
    from .keys import Keyring
    from .ledger import Ledger
    from .limits import LocalLimits

    ledger = Ledger(config.sqlite_path(), durable=config.state.durable)
    limits: Limits
    url = config.redis_url
    if url:
        from .redis_state import RedisLimits

        redis_limits = RedisLimits(url, ledger)
        try:
            await redis_limits.ping()
        except Exception as exc:
            await redis_limits.close()
            raise ConfigError(f"cannot reach Redis at {redact_url(url)}: {exc}") from None
        limits = redis_limits
    else:
        limits = LocalLimits(ledger)
    engine = check(config, build_engine(config, limits.cooldowns))
    keyring = Keyring(config.keys, engine.settings.env)
    return engine, keyring, ledger, limits


def redact_url(url: str) -> str:
    """A URL with its password shown as ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
