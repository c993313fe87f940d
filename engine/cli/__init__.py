"""The ``genai`` command line: a thin layer over the library.

``genai --help`` lists the commands; every command has ``--help`` with examples.
`parser` defines the arguments, `commands` runs them (each calls the library and
prints), `console` formats output, and `docs` generates the provider-format
reference and schema. Commands import the engine's parts only when they run, so
``--help`` starts fast. Results go to stdout, messages to stderr; colours only on
a terminal and never with ``NO_COLOR``. Exit codes: see ``genai --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .commands import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, one_line
from .console import Console

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from .parser import build_parser

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
    from ..errors import ConfigError, EngineError, InvalidRequestError

    if args.debug:
        import traceback

        traceback.print_exception(exc, file=console.err)
    if isinstance(exc, UsageError | ConfigError | InvalidRequestError):
        console.error(one_line(exc))
        return EXIT_USAGE
    message = one_line(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {one_line(exc)}"
    console.error(message + ("" if args.debug else " (run with --debug for the traceback)"))
    return EXIT_FAILED
