"""``python -m socketkit`` and the ``socketkit`` command."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from .cli import main as cli_main  # noqa: PLC0415 - the CLI's dependencies are an extra
    except ImportError as exc:
        print(
            f"socketkit: error: the command needs click and rich ({exc.name} is missing): "
            "pip install 'socketkit[cli]'",
            file=sys.stderr,
        )
        return 2
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
