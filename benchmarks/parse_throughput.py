"""Throughput benchmark for the code parsing pipeline (detect + parse + chunk).

Collects real source files of a few hundred lines from the installed site-packages (and
any extra ``--root`` directories, e.g. ``/usr/lib/node_modules``), loads them into
memory, then times ``detect_language`` + ``is_binary`` + decode + ``parse_source`` per
file in a single thread. File reading is excluded: the indexer's I/O cost depends on the
storage, the parsing cost is what this module controls.

Usage::

    python benchmarks/parse_throughput.py [--files N] [--repeat R] [--root DIR ...]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

from codeatlas.code.parsing import detect_language, is_binary, parse_source, supported_languages

TARGET_FILES_PER_SECOND = 200.0


def _candidate_roots(extra: list[str]) -> list[Path]:
    roots = {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
    roots.update(Path(p) for p in extra)
    return sorted(r for r in roots if r.is_dir())


def collect(roots: list[Path], count: int, min_lines: int, max_lines: int) -> list[Path]:
    supported = supported_languages()
    found: list[Path] = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.suffix == "" or "test" in path.name.lower():
                continue
            if detect_language(path.name) not in supported:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if min_lines <= data.count(b"\n") <= max_lines and not is_binary(data):
                found.append(path)
    found.sort()
    # Deterministic sample, but spread across packages instead of the first N paths.
    random.Random(0).shuffle(found)
    return found[:count]


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(pct / 100 * (len(sorted_values) - 1))))
    return sorted_values[rank]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=400, help="number of files to parse")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the file set")
    parser.add_argument("--min-lines", type=int, default=150)
    parser.add_argument("--max-lines", type=int, default=800)
    parser.add_argument("--root", action="append", default=[], help="extra source root")
    args = parser.parse_args(argv)

    roots = _candidate_roots(args.root)
    paths = collect(roots, args.files, args.min_lines, args.max_lines)
    if not paths:
        print("no source files found", file=sys.stderr)
        return 1
    corpus = [(str(p), p.read_bytes()) for p in paths]
    languages = Counter(detect_language(name) for name, _ in corpus)
    total_lines = sum(data.count(b"\n") for _, data in corpus)

    # Warm-up: grammar loading and query compilation are one-off costs per process.
    for name, data in corpus[: min(len(corpus), 20)]:
        parse_source(data.decode("utf-8", "replace"), detect_language(name, data[:512]))

    latencies: list[float] = []
    chunks = symbols = errors = 0
    wall_start = time.perf_counter()
    for _ in range(args.repeat):
        for name, data in corpus:
            start = time.perf_counter()
            language = detect_language(name, data[:512])
            if is_binary(data):
                continue
            result = parse_source(data.decode("utf-8", "replace"), language)
            latencies.append(time.perf_counter() - start)
            chunks += len(result.chunks)
            symbols += len(result.symbols)
            errors += result.error is not None
    wall = time.perf_counter() - wall_start

    latencies.sort()
    files_per_second = len(latencies) / wall
    ms = [v * 1000 for v in latencies]
    print(f"roots: {', '.join(str(r) for r in roots)}")
    print(
        f"corpus: {len(corpus)} files, {total_lines} lines "
        f"(avg {total_lines / len(corpus):.0f} lines/file), "
        + ", ".join(f"{lang}={n}" for lang, n in languages.most_common())
    )
    print(f"runs: {args.repeat} x {len(corpus)} = {len(latencies)} parses in {wall:.2f}s")
    print(
        f"throughput: {files_per_second:.1f} files/s, "
        f"{total_lines * args.repeat / wall:,.0f} lines/s"
    )
    print(
        f"latency ms: p50={percentile(ms, 50):.2f} p95={percentile(ms, 95):.2f} "
        f"p99={percentile(ms, 99):.2f} max={ms[-1]:.2f} mean={statistics.fmean(ms):.2f}"
    )
    per_run = len(latencies) // max(1, args.repeat)
    print(
        f"output per pass: {chunks // max(1, args.repeat)} chunks, "
        f"{symbols // max(1, args.repeat)} symbols, {errors} errors ({per_run} files)"
    )
    verdict = "PASS" if files_per_second >= TARGET_FILES_PER_SECOND else "FAIL"
    print(
        f"target: >= {TARGET_FILES_PER_SECOND:.0f} files/s single process -> {verdict} "
        f"({files_per_second / TARGET_FILES_PER_SECOND:.2f}x target)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
