"""Figures of what the commands print: quantization against width, delta thresholds.

PNG through matplotlib's Agg backend (no display needed). A figure is written to a temporary
file next to its target and renamed into place, so a failed run leaves no half-written file.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


class PlotError(ValueError):
    """A figure cannot be written where it was asked for."""


def check_figure_path(path) -> Path:
    """The path as a Path, or PlotError before any work is done for a figure."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise PlotError(f"figure path must end in .png: {path}")
    if not path.parent.is_dir():
        raise PlotError(f"no such folder for the figure: {path.parent}")
    return path


def _save(fig, path) -> Path:
    try:
        path = check_figure_path(path)
    except PlotError:
        plt.close(fig)
        raise
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def quantization_figure(rows: list[dict], metric_name: str, title: str, path) -> Path:
    """Metric and weight memory against weight width, calibrated vs one global format.

    ``rows`` are :func:`hwgen.flow.quantization_table` rows (the float32 row first)."""
    fig, (ax_m, ax_w) = plt.subplots(1, 2, figsize=(10, 3.8))
    float_row = next(r for r in rows if r["scheme"] == "float32")
    for scheme, style in (("calibrated", "o-"), ("global", "s--")):
        pts = sorted((r["weight_bits"], r["metric"], r["weight_kbit"])
                     for r in rows if r["scheme"] == scheme)
        if not pts:
            continue
        bits, metric, kbit = zip(*pts)
        ax_m.plot(bits, metric, style, label=f"{scheme} per-tensor formats"
                  if scheme == "calibrated" else "one global format")
        if scheme == "calibrated":
            ax_w.plot(bits, kbit, "o-", label="weight memory")
    ax_m.axhline(float_row["metric"], color="k", lw=0.8, ls=":", label="float32")
    ax_m.set(xlabel="weight bits", ylabel=metric_name, title=title)
    ax_m.legend(fontsize=8)
    fp32 = [r["weight_kbit"] / (1 - r["reduction"]) for r in rows
            if r["scheme"] == "calibrated" and r["reduction"] < 1]
    if fp32:
        ax_w.axhline(fp32[0], color="k", lw=0.8, ls=":", label="float32")
    ax_w.set(xlabel="weight bits", ylabel="kbit", title="weight memory", ylim=(0, None))
    ax_w.legend(fontsize=8)
    for ax in (ax_m, ax_w):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def delta_figure(points, dense_metric: float, metric_name: str, path, chosen=None,
                 budget: float | None = None) -> Path:
    """Metric and MACs eliminated against a uniform threshold Θ (points of
    :func:`hwgen.delta.sweep`); the budgeted per-layer choice as a marker.

    Metrics are drawn as magnitudes (a bits-per-character score is stored negated)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    theta = [p.thresholds[0][0] for p in points]
    ax.plot(theta, [abs(p.metric) for p in points], "o-", color="C0", label=metric_name)
    ax.axhline(abs(dense_metric), color="C0", lw=0.8, ls=":", label="dense")
    if budget is not None:
        worse = abs(dense_metric) + (budget if dense_metric < 0 else -budget)
        ax.axhline(worse, color="C3", lw=0.8, ls="--", label=f"budget {budget:g}")
    ax.set(xlabel="threshold Θ (integer, same for every path)", ylabel=metric_name)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(theta, [100 * p.macs_eliminated for p in points], "s-", color="C1",
             label="MACs eliminated")
    ax2.set(ylabel="MACs eliminated, %", ylim=(0, 100))
    if chosen is not None:  # drawn at its largest threshold, on both curves
        x = max(t for pair in chosen.thresholds for t in pair)
        ax2.plot([x], [100 * chosen.macs_eliminated], "*", color="C2", ms=12,
                 label=f"chosen {chosen.thresholds}")
        ax.plot([x], [abs(chosen.metric)], "*", color="C2", ms=12)
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], fontsize=8, loc="center right")
    ax.set_title("delta network: threshold vs metric vs operations")
    return _save(fig, path)
