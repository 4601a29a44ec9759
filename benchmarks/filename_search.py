"""6-A benchmark: filename search on PostgreSQL with 1,000,000 documents.

Same as ``codeatlas bench filename-search``; the work is in :mod:`codeatlas.code.bench`.

Usage::

    python benchmarks/filename_search.py [--rows 1000000] [--queries 1000] \\
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/codeatlas_bench_filenames]
"""

from __future__ import annotations

import argparse
import os
import sys

from codeatlas.code.bench import run
from codeatlas.code.cli import DEFAULT_BENCH_URL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_URL)
    )
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP phase")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args()
    return run(
        args.database_url, args.rows, args.projects, args.queries, not args.no_http, args.redis_url
    )


if __name__ == "__main__":
    sys.exit(main())
