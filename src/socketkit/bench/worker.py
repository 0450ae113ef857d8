"""A worker process for ``bench -p N``: runs its share, speaks JSON lines on stdout.

Why JSON lines and not multiprocessing: multiprocessing moves objects with
pickle, which this project uses nowhere. Each line is ``{"progress": ...}``
while running and ``{"result": ...}`` at the end.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from .config import BenchConfig
from .runner import Progress, Runner


def main() -> int:
    config = BenchConfig(**json.loads(sys.argv[1]))

    def report(progress: Progress) -> None:
        print(json.dumps({"progress": dataclasses.asdict(progress)}), flush=True)

    result = Runner(config, report).run()
    print(json.dumps({"result": dataclasses.asdict(result)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
