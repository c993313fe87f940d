"""Terminal output for the ``genai`` command line: colours, tables and number formats."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar


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


def json_text(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def show_path(file: str | Path | None) -> str:
    """A path relative to the working directory when it is inside it, else as given."""
    if file is None:
        return "<unknown file>"
    path = Path(file)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(file)


def money(value: float | Decimal | None) -> str:
    from decimal import Decimal

    if value is None:
        return "-"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0"
    text = f"{amount:.4f}" if amount >= Decimal("0.01") else f"{amount:.10f}"
    whole, _, cents = text.rstrip("0").partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def per_million(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = f"{value.normalize():f}"
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def yaml_text(data: Any) -> str:
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
