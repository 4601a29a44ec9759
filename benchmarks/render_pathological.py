"""Benchmark: worst-case time of the rendering endpoint's work for pathological Markdown
(issue 11, finding 3: any input up to the size limit renders in < 250 ms or is refused 4xx).

For each input of ``tests/rendering/pathological_corpus.py`` (plus a few benign documents of
the same size) it times, in this process, exactly what POST /api/v1/rendering/markdown does
before answering: the complexity pre-scan (``check_complexity``) and, when that lets the
input through, ``render_markdown`` (parse + highlight + sanitise). Refused inputs are timed
too (the pre-scan must be cheap). Prints p50/p95/p99 per input and the verdict against
250 ms. The machine's load average is printed: figures from a busy machine are upper bounds.

Run: ``python benchmarks/render_pathological.py [--repeat 5] [--only NAME]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codeatlas.rendering.complexity import MarkdownTooComplex, check_complexity
from codeatlas.rendering.core import RenderTooLarge, render_markdown
from codeatlas.settings import Settings
from tests.rendering.pathological_corpus import CORPUS

TARGET_MS = 250.0


def _benign() -> dict[str, str]:
    prose = ("The quick brown fox jumps over the lazy dog. " * 20 + "\n\n") * 100
    code = "```python\n" + "def f(x):\n    return [x * 2 for _ in range(3)]\n" * 2000 + "```\n"
    return {"benign-prose-90k": prose, "benign-code-block-90k": code}


def _once(text: str, settings: Settings) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        if len(text.encode("utf-8", "surrogatepass")) > settings.render_max_input_bytes:
            raise RenderTooLarge(len(text), settings.render_max_input_bytes)
        check_complexity(text, settings.render_max_inline_marks, settings.render_max_lines)
        render_markdown(text, max_bytes=settings.render_max_input_bytes)
        outcome = "200"
    except RenderTooLarge:
        outcome = "413"
    except MarkdownTooComplex:
        outcome = "422"
    return (time.perf_counter() - started) * 1000, outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    settings = Settings(env="test")
    inputs = {**CORPUS, **_benign()}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'input':34s} {'bytes':>7s} {'ans':>4s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}")
    worst = 0.0
    over = []
    for name, text in inputs.items():
        if args.only and args.only not in name:
            continue
        times, outcome = [], ""
        for _ in range(args.repeat):
            ms, outcome = _once(text, settings)
            times.append(ms)
        times.sort()
        p50 = statistics.median(times)
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        p99 = times[-1]
        worst = max(worst, p99)
        if p99 >= TARGET_MS:
            over.append(name)
        size = len(text.encode("utf-8", "surrogatepass"))
        print(f"{name:34s} {size:7d} {outcome:>4s} {p50:8.1f} {p95:8.1f} {p99:8.1f}")
    verdict = "MET" if not over else f"NOT MET ({', '.join(over)})"
    print(f"worst p99 {worst:.1f} ms; target < {TARGET_MS:.0f} ms per input: {verdict}")


if __name__ == "__main__":
    main()
