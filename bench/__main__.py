"""``python -m bench``: the engine's benchmark (run.py); ``python -m bench gateway``: the gateway's (gateway.py)."""

import sys


def _main() -> int:
    if sys.argv[1:2] == ["gateway"]:
        from .gateway import main

        return main(sys.argv[2:])
    from .run import main as run_main

    return run_main()


sys.exit(_main())
