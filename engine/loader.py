"""Find provider files, read them, resolve ``extends`` and validate them into specs.

Reading is cheap (the C YAML loader, no validation) so that listing providers
stays fast; a file is validated when its provider is first used. Errors name
the file, the key path and the line: lines are found by composing the YAML
again, only when there is an error to report.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ProviderFileError
from .limits import DEFAULT, LimitExceeded

try:
    _FastLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _FastLoader = yaml.SafeLoader

PACKAGE_DIR = Path(__file__).resolve().parent

# Keys that describe one provider and are never inherited through ``extends``.
NOT_INHERITED = ("name", "extends", "description", "docs_url", "checked", "models", "default_model", "pricing")


def bundled_path(name: str) -> Path:
    """A bundled data file or folder: inside the package when installed, at the repo top in a checkout."""
    inside = PACKAGE_DIR / name
    return inside if inside.exists() else PACKAGE_DIR.parent / name


@dataclass(frozen=True, slots=True)
class ProviderSource:
    """One provider file as read from disk, before validation."""

    name: str
    path: Path
    data: dict[str, Any]
    text: str


def max_file_bytes() -> int:
    """The size limit of provider and pricing files (``GENAI_MAX_FILE_BYTES``), read without `Settings`."""
    from ._env import env

    value = env("GENAI_MAX_FILE_BYTES")
    return int(value) if value and value.isdigit() else DEFAULT.max_file_bytes


def read_text(path: Path, limit: int | None = None) -> str:
    """A provider or pricing file's text: a regular file (never a FIFO or device), UTF-8, within the size limit."""
    limit = max_file_bytes() if limit is None else limit
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ProviderFileError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ProviderFileError("not a regular file (a provider or pricing file must be one)", file=str(path))
    if info.st_size > limit:
        raise ProviderFileError(str(LimitExceeded("max_file_bytes", limit, f"the file ({info.st_size:,} bytes)")),
                                file=str(path))
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ProviderFileError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from exc
    if len(data) > limit:
        raise ProviderFileError(str(LimitExceeded("max_file_bytes", limit, "the file")), file=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ProviderFileError(f"not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})",
                                file=str(path), line=line) from exc


MAX_YAML_VALUES = 100_000  # values a file may expand to through YAML aliases (the "billion laughs")


def expanded_size(data: Any, limit: int = MAX_YAML_VALUES) -> int:
    """How many values ``data`` holds with every alias expanded, counting shared parts once per use.

    Computed over the shared structure (each node once), so the check is cheap even when the expansion is
    astronomical; stops counting past ``limit``.
    """
    sizes: dict[int, int] = {}
    order: list[Any] = []
    stack = [data]
    seen: set[int] = set()
    while stack:  # children before parents, each container once
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        stack.extend(child for child in _children(node) if isinstance(child, dict | list))
    for node in reversed(order):
        size = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
        sizes[id(node)] = min(size, limit + 1)
    return sizes.get(id(data), 1)


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    return node if isinstance(node, list) else []


def read_yaml(path: Path) -> tuple[Any, str]:
    """Parse a YAML file; a syntax error names the file and line."""
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_FastLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProviderFileError(f"invalid YAML: {problem}", file=str(path),
                                line=mark.line + 1 if mark else None) from exc
    except RecursionError as exc:
        raise ProviderFileError("invalid YAML: nested too deeply", file=str(path)) from exc
    if "*" in text and expanded_size(data) > MAX_YAML_VALUES:
        raise ProviderFileError(f"YAML aliases expand to more than {MAX_YAML_VALUES:,} values (anchors that "
                                "repeat anchors); write the values out instead", file=str(path))
    return data, text


def read_source(path: Path) -> ProviderSource:
    """Read one provider file far enough to know its name."""
    data, text = read_yaml(path)
    if not isinstance(data, dict):
        raise ProviderFileError("a provider file must be a mapping of keys", file=str(path), line=1)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ProviderFileError("missing required key 'name'", file=str(path), key="name", line=1)
    return ProviderSource(name, path, data, text)


def provider_files(folder: Path) -> list[Path]:
    """The provider files in a folder, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))


@dataclass(slots=True)
class Discovery:
    """What the provider folders hold.

    ``found``: for each name, its definitions in precedence order (last wins). ``broken``: names whose top
    definition cannot be used (two files of one folder define the name, or its file cannot be read); using
    one raises its error. ``unreadable``: every file that could not be read. ``overrides``: a definition
    replaced by one in a later folder, as (name, replaced file, replacing file).
    """

    found: dict[str, list[ProviderSource]] = field(default_factory=dict)
    broken: dict[str, ProviderFileError] = field(default_factory=dict)
    unreadable: list[ProviderFileError] = field(default_factory=list)
    overrides: list[tuple[str, Path, Path]] = field(default_factory=list)

    def names(self) -> list[str]:
        return sorted({*self.found, *self.broken})


def discover(folders: Iterable[Path]) -> Discovery:
    """Every provider in the folders. One broken file affects only its own provider: a file whose name cannot
    be read is listed under its file name, unless a good file provides that name."""
    result = Discovery()
    unnamed: dict[str, ProviderFileError] = {}
    for folder in folders:
        here: dict[str, Path] = {}
        for path in provider_files(Path(folder)):
            try:
                source = read_source(path)
            except ProviderFileError as exc:
                result.unreadable.append(exc)
                unnamed[path.stem] = exc
                continue
            name = source.name
            if name in here:
                result.broken[name] = ProviderFileError(
                    f"{here[name].name} and {path.name} in {Path(folder)} both define provider {name!r}; "
                    "remove or rename one", file=str(path), key="name", line=line_of(source, ("name",)))
                continue
            here[name] = path
            layers = result.found.setdefault(name, [])
            if layers:
                result.overrides.append((name, layers[-1].path, path))
                result.broken.pop(name, None)  # a later folder's file replaces a broken definition
            layers.append(source)
    for name, error in unnamed.items():
        if name not in result.found:
            result.broken.setdefault(name, error)
    return result


def resolve_chain(name: str, found: dict[str, list[ProviderSource]]) -> list[ProviderSource]:
    """The ``extends`` chain of a provider, from the file itself up to its root."""
    chain: list[ProviderSource] = []
    seen: set[tuple[str, int]] = set()
    layers = found[name]
    index = len(layers) - 1
    while True:
        source = layers[index]
        if (source.name, index) in seen:
            names = " -> ".join(s.name for s in chain) + f" -> {source.name}"
            raise ProviderFileError(f"extends cycle: {names}", file=str(chain[0].path), key="extends",
                                    line=line_of(chain[0], ("extends",)))
        seen.add((source.name, index))
        chain.append(source)
        parent = source.data.get("extends")
        if parent is None:
            return chain
        if not isinstance(parent, str):
            raise ProviderFileError("must be a provider name", file=str(source.path), key="extends",
                                    line=line_of(source, ("extends",)))
        if parent == source.name and index > 0:
            # A user file may extend the bundled file of the same name it overrides.
            index -= 1
            continue
        if parent not in found:
            raise ProviderFileError(f"extends unknown provider {parent!r} (known: {', '.join(sorted(found))})",
                                    file=str(source.path), key="extends", line=line_of(source, ("extends",)))
        layers = found[parent]
        index = len(layers) - 1


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings: the override wins; lists and scalars are replaced; ``null`` deletes."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merged_data(chain: Sequence[ProviderSource]) -> dict[str, Any]:
    """The provider's data with its ``extends`` chain applied (root first)."""
    data: dict[str, Any] = {}
    for source in reversed(chain[1:]):
        inherited = copy.deepcopy(source.data)
        for key in NOT_INHERITED:
            inherited.pop(key, None)
        if isinstance(inherited.get("auth"), dict):
            inherited["auth"].pop("env", None)  # never send one provider's key to another
        if isinstance(inherited.get("embeddings"), dict):
            inherited["embeddings"].pop("default_model", None)  # model ids are the provider's own, like models'
        data = merge(data, inherited)
    data = merge(data, chain[0].data)
    data["name"] = chain[0].name
    return data


def line_of(source: ProviderSource, key_path: Sequence[str | int]) -> int | None:
    """The 1-based line of a key path in a file, or of its deepest existing parent."""
    try:
        node = yaml.compose(source.text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for key in key_path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(key):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def has_key(data: Any, key_path: Sequence[str | int]) -> bool:
    for key in key_path:
        in_dict = isinstance(data, dict) and key in data
        if in_dict or (isinstance(data, list) and isinstance(key, int) and key < len(data)):
            data = data[key]
        else:
            return False
    return True


def locate(chain: Sequence[ProviderSource], key_path: Sequence[str | int]) -> tuple[str, int | None]:
    """The file (of an ``extends`` chain) that sets a key path, and its line there."""
    for depth in range(len(key_path), 0, -1):
        for source in chain:
            if has_key(source.data, key_path[:depth]):
                return str(source.path), line_of(source, key_path[:depth])
    return str(chain[0].path), None


def value_line(source: ProviderSource, key_path: Sequence[str | int]) -> int | None:
    """The line where a key's value starts (a block scalar's first content line)."""
    try:
        node = yaml.compose(source.text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    for key in key_path:
        if not isinstance(node, yaml.MappingNode):
            return None
        for key_node, value_node in node.value:
            if key_node.value == str(key):
                node = value_node
                break
        else:
            return None
    if node is None:
        return None
    style = getattr(node, "style", None)
    return node.start_mark.line + (2 if style in ("|", ">") else 1)
