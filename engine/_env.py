"""The one ``.env`` reader: environment variables first, then the ``.env`` file of the working folder.

Kept free of pydantic so that listing providers does not pay for pydantic-settings.
"""

from __future__ import annotations

import os
from pathlib import Path

_cache: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}


def dotenv_values(path: str | Path = ".env") -> dict[str, str]:
    """The values of a ``.env`` file (empty when there is none), re-read when the file changes."""
    try:
        file = Path(path).resolve()
        info = file.stat()
    except OSError:
        return {}
    stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
    cached = _cache.get(file)
    if cached is None or cached[0] != stamp:
        from dotenv import dotenv_values as parse

        values = {k: v for k, v in parse(file).items() if v is not None}
        _cache[file] = cached = (stamp, values)
    return cached[1]


def env(name: str, env_file: str | Path | None = ".env") -> str | None:
    """An env variable, from the process environment or else the ``.env`` file; empty counts as unset."""
    value = os.environ.get(name)
    if value:
        return value
    if env_file is None:
        return None
    return dotenv_values(env_file).get(name) or None
