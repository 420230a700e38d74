"""Delta-network thresholds: sweeps and a per-layer choice under an accuracy budget.

Thresholds are integers in LSBs of each layer's input (theta_x) and hidden (theta_h)
formats. `choose_thresholds` is a greedy search: starting from all zeros, it repeatedly
raises the one threshold (some layer's theta_x or theta_h, to its next candidate that
eliminates more) whose
step buys the most eliminated MACs per point of metric lost, as long as the total loss
against the dense model stays within the user's budget. Each layer's input and hidden
paths are judged separately because their change statistics differ (inputs follow the
data; hidden states are smoothed by the gates).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .qmodel import QModel
from .ref import DeltaStats, run_int

CANDIDATES = (0, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64)  # 1 acts as 0


@dataclass
class DeltaPoint:
    thresholds: list          # [(theta_x, theta_h)] per layer
    metric: float             # task metric (higher is better, e.g. accuracy or -bpc)
    macs_eliminated: float
    fired_fraction: float

    def as_row(self) -> dict:
        return {"thresholds": [list(t) for t in self.thresholds], "metric": self.metric,
                "macs_eliminated": self.macs_eliminated, "fired_fraction": self.fired_fraction}


def evaluate_delta(qm: QModel, xq, metric: Callable, thresholds,
                   layout: str | None = None) -> DeltaPoint:
    """Run the delta reference and score its integer outputs with `metric(y_int)`.

    `xq` and the outputs `metric` sees are in `layout` (None: the model's own, see
    `hwgen.ir.data_layout`).
    """
    stats = DeltaStats()
    y = run_int(qm, xq, delta=[tuple(t) for t in thresholds], stats=stats, layout=layout)
    return DeltaPoint([tuple(t) for t in thresholds], float(metric(y)),
                      stats.macs_eliminated, stats.fired_fraction)


def sweep(qm: QModel, xq, metric: Callable, thetas=(0, 1, 2, 4, 8, 16, 32),
          layout: str | None = None) -> list[DeltaPoint]:
    """One threshold for every path of every layer, for each theta."""
    return [evaluate_delta(qm, xq, metric, [(t, t)] * len(qm.layers), layout) for t in thetas]


def choose_thresholds(qm: QModel, xq, metric: Callable, budget: float,
                      candidates=CANDIDATES, progress=None,
                      layout: str | None = None) -> tuple[DeltaPoint, list]:
    """Largest MAC elimination found whose metric stays within `budget` of Θ = 0.

    Parameters
    ----------
    metric : integer outputs -> score, higher is better (accuracy in points, or -bpc).
    budget : allowed metric loss against the dense (Θ = 0) model, in the metric's units.
    layout : of `xq` and of the outputs `metric` sees; None: the model's own.
    Returns the chosen point and the path of accepted points.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, not {budget!r}")
    n_paths = 2 * len(qm.layers)
    idx = [0] * n_paths

    def thresholds_of(ix):
        return [(candidates[ix[2 * k]], candidates[ix[2 * k + 1]]) for k in range(len(qm.layers))]

    best = evaluate_delta(qm, xq, metric, thresholds_of(idx), layout)
    floor = best.metric - budget
    path = [best]
    while True:
        moves = []
        for p in range(n_paths):
            if p % 2 and not qm.layers[p // 2].spec.blocks_h:
                continue  # no recurrent columns (SRU): theta_h changes nothing
            # the next candidate of this path that eliminates more (equal ones are free)
            for nxt in range(idx[p] + 1, len(candidates)):
                trial = list(idx)
                trial[p] = nxt
                point = evaluate_delta(qm, xq, metric, thresholds_of(trial), layout)
                if point.macs_eliminated > best.macs_eliminated:
                    if point.metric >= floor:
                        gain = point.macs_eliminated - best.macs_eliminated
                        loss = max(best.metric - point.metric, 1e-9)
                        moves.append((gain / loss, point, trial))
                    break
        if not moves:
            return best, path
        _, best, idx = max(moves, key=lambda m: m[0])
        path.append(best)
        if progress:
            progress(best)
