"""The reliability suite: real attacks and faults against socketkit, each with a figure.

Run from the repository root, after ``make test`` made the venv::

    .venv/bin/python -m bench.reliability            # the quick form (CI runs it)
    .venv/bin/python -m bench.reliability --full     # by hand; its table is docs/RELIABILITY.md
    .venv/bin/python -m bench.reliability --only slowloris,fuzz
"""
