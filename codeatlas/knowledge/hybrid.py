"""Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): merging ranked lists.

Each list contributes ``weight / (k + rank)`` (rank 1-based) to every item it contains, and
items are ordered by the sum. Only ranks are used, so the semantic list's cosine scores and
the keyword list's BM25 scores never need to be made comparable. Ties are broken by the
best single rank, then by first appearance, so the order is deterministic.

Hand-written: the whole algorithm is the formula above; a dependency would add nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class Fused(Generic[K]):
    key: K
    score: float = 0.0
    ranks: list[int | None] = field(default_factory=list)  # 1-based rank in each list

    @property
    def best_rank(self) -> int:
        return min((r for r in self.ranks if r is not None), default=1 << 30)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]],
    *,
    k: float = 60.0,
    weights: Sequence[float] | None = None,
) -> list[Fused[K]]:
    """Fuse ``rankings`` (each best first; duplicates inside one list count once)."""
    if k <= 0:
        raise ValueError("k must be > 0")
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    fused: dict[K, Fused[K]] = {}
    order: dict[K, int] = {}
    for list_no, (ranking, weight) in enumerate(zip(rankings, weights, strict=True)):
        rank = 0
        seen: set[K] = set()
        for key in ranking:
            if key in seen:
                continue
            seen.add(key)
            rank += 1
            item = fused.get(key)
            if item is None:
                item = fused[key] = Fused(key, 0.0, [None] * len(rankings))
                order[key] = len(order)
            item.ranks[list_no] = rank
            item.score += weight / (k + rank)
    return sorted(fused.values(), key=lambda f: (-f.score, f.best_rank, order[f.key]))
