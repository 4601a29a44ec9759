"""A timing-free measure of a render's work: the Python calls it makes (issue 11)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def count_calls(job: Callable[[], object]) -> int:
    """Python and C calls ``job`` makes, counted with a profile hook."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(profile)
    try:
        job()
    finally:
        sys.setprofile(None)
    return calls
