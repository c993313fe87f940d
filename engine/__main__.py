"""``python -m engine``: the ``genai`` command line."""

from engine.cli import main

raise SystemExit(main())
