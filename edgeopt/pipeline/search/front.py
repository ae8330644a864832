"""Pareto front (all objectives minimised) and the chosen candidate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    number: int  # the Optuna trial number
    values: tuple[float, ...]
    feasible: bool  # every budget of its build met


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a is no worse than b on every objective and better on one."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(points: Sequence[Point]) -> tuple[Point, ...]:
    """The non-dominated points among the feasible ones (among all when none is feasible), by trial number;
    of points with equal values only the first trial is kept."""
    pool = [p for p in points if p.feasible] or list(points)
    front: list[Point] = []
    seen: set[tuple[float, ...]] = set()
    for p in sorted(pool, key=lambda p: p.number):
        if p.values in seen or any(dominates(q.values, p.values) for q in pool):
            continue
        seen.add(p.values)
        front.append(p)
    return tuple(front)


def choose(points: Sequence[Point]) -> Point | None:
    """Best on the first objective among those within budget (ties: the next objectives, then the earlier trial)."""
    feasible = [p for p in points if p.feasible]
    return min(feasible, key=lambda p: (*p.values, p.number)) if feasible else None
