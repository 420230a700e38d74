"""Pareto fronts: the points no other point beats on every objective.

Objectives are given as ``(key, higher_is_better)``; a point dominates another when it is
at least as good on every objective and strictly better on one. Equal points do not
dominate each other, so ties are all on the front.
"""
from __future__ import annotations


def dominates(a: dict, b: dict, objectives) -> bool:
    """Whether point ``a`` dominates point ``b`` on ``objectives``."""
    better = False
    for key, higher in objectives:
        x, y = (a[key], b[key]) if higher else (-a[key], -b[key])
        if x < y:
            return False
        better = better or x > y
    return better


def pareto_front(points: list, objectives) -> list[int]:
    """Indices of the non-dominated points of ``points`` (dicts holding every objective)."""
    return [i for i, p in enumerate(points)
            if not any(dominates(q, p, objectives) for j, q in enumerate(points) if j != i)]


def objectives(higher_is_better: bool) -> list[tuple[str, bool]]:
    """The sweep's objectives: the task metric, ``utilization`` (lower), ``throughput``."""
    return [("metric", higher_is_better), ("utilization", False), ("throughput", True)]


def mark_front(points: list, higher_is_better: bool) -> None:
    """Set ``pareto`` on every point: True for the non-dominated points of its target among
    those that fit, have a throughput and did not fail (``status`` "ok"); False for others."""
    obj = objectives(higher_is_better)
    for p in points:
        p["pareto"] = False
    for target in sorted({p["target"] for p in points}):
        ok = [p for p in points if p["target"] == target and p.get("fits")
              and p.get("status", "ok") == "ok" and all(p.get(k) is not None for k, _ in obj)]
        for i in pareto_front(ok, obj):
            ok[i]["pareto"] = True
