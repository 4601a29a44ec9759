"""Benchmark: worst-case time of the rendering endpoint's work for pathological Markdown
(issue 11, finding 3: any input up to the size limit renders in < 250 ms or is refused 4xx).

For each input of ``tests/rendering/pathological_corpus.py`` (CORPUS and BENIGN) it times,
in this process, exactly what POST /api/v1/rendering/markdown does before answering: the
size check, the complexity pre-scan (``check_complexity``) and, when that lets the input
through, ``render_markdown`` with the limits of the default settings (parse + highlight +
linkify + sanitise), after the one-time start-up work a server does (``warm_up`` of the
listed lexers, one small render). Refused inputs are timed too (the pre-scan must be cheap).

Per input: the answer (200/413/422), the pre-scan's work estimate, wall-clock p50/p95/p99/max
and the CPU time (process time) p50/max, in ms. Wall time on a shared machine includes waits
for a CPU; CPU time is what the same render costs on an idle one. The verdict is on the wall
max (and on the CPU max, reported separately). The load average is printed: figures from a
busy machine are upper bounds. ``--markdown`` prints the table in Markdown for docs/benchmarks.md.

Run: ``python benchmarks/render_pathological.py [--repeat 20] [--only NAME] [--markdown]``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codeatlas.rendering.complexity import (
    ComplexityLimits,
    MarkdownTooComplex,
    check_complexity,
    measure,
)
from codeatlas.rendering.core import RenderTooLarge, render_markdown, warm_up
from codeatlas.rendering.service import check_input_size, render_limits
from codeatlas.settings import Settings
from tests.rendering.pathological_corpus import BENIGN, CORPUS

TARGET_MS = 250.0


def _once(text: str, settings: Settings) -> tuple[float, float, str]:
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        check_input_size(text, settings.render_max_input_bytes)
        check_complexity(text, ComplexityLimits.from_settings(settings))
        render_markdown(text, limits=render_limits(settings))
        outcome = "200"
    except RenderTooLarge:
        outcome = "413"
    except MarkdownTooComplex:
        outcome = "422"
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, outcome


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (of 20 runs: p95 the 19th, p99 the 20th)."""
    return values[max(0, math.ceil(q * len(values)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--only", default="")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    settings = Settings(env="test")
    # as a server does at start (LocalRenderer): the listed lexers load in the background,
    # and the first request pays the one-time imports (latex2mathml, linkify-it, nh3)
    warm_up()
    render_markdown("# t\n\n*a* `b` www.example.com $x^2$\n\n```python\nx = 1\n```\n")
    inputs = {**CORPUS, **BENIGN}
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"{now}; load average {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} CPUs; "
        f"repeat {args.repeat}"
    )
    cols = ("input", "bytes", "ans", "work", "p50", "p95", "p99", "max", "cpu p50", "cpu max")
    if args.markdown:
        print("| " + " | ".join(cols) + " |")
        print("|---" * len(cols) + "|")
    else:
        print(f"{cols[0]:32s} " + " ".join(f"{c:>8s}" for c in cols[1:]))
    worst_wall = worst_cpu = 0.0
    over_wall, over_cpu = [], []
    for name, text in inputs.items():
        if args.only and args.only not in name:
            continue
        walls, cpus, outcome = [], [], ""
        for _ in range(args.repeat):
            wall, cpu, outcome = _once(text, settings)
            walls.append(wall)
            cpus.append(cpu)
        walls.sort()
        cpus.sort()
        work = measure(text).work if outcome != "413" else 0
        row = (
            statistics.median(walls), _pct(walls, 0.95), _pct(walls, 0.99), walls[-1],
            statistics.median(cpus), cpus[-1],
        )  # fmt: skip
        worst_wall, worst_cpu = max(worst_wall, walls[-1]), max(worst_cpu, cpus[-1])
        if walls[-1] >= TARGET_MS:
            over_wall.append(name)
        if cpus[-1] >= TARGET_MS:
            over_cpu.append(name)
        size = len(text.encode("utf-8", "surrogatepass"))
        if args.markdown:
            cells = [f"`{name}`", str(size), outcome, str(work), *(f"{v:.1f}" for v in row)]
            print("| " + " | ".join(cells) + " |")
        else:
            print(
                f"{name:32s} {size:8d} {outcome:>8s} {work:8d} "
                + " ".join(f"{v:8.1f}" for v in row)
            )
    verdict = "MET" if not over_wall else f"NOT MET ({', '.join(over_wall)})"
    print(
        f"\nworst wall max {worst_wall:.1f} ms, worst CPU max {worst_cpu:.1f} ms; "
        f"target < {TARGET_MS:.0f} ms per input (wall): {verdict}; "
        f"CPU: {'MET' if not over_cpu else 'NOT MET (' + ', '.join(over_cpu) + ')'}; "
        f"load average after {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
