"""Design-space exploration: sweeps of quantization, lanes and targets, on Dask.

`explore` runs the product of the axes (`Axes`) as shared stages (one quantization feeds
every lane count and target, one design every target), caches every stage result on disk,
records failing points with their reason, marks the Pareto front of (metric, utilization,
throughput) per target and writes points.json, points.csv, PNG figures and report.html.
"""
from .cache import model_digest, stage_key, tool_versions
from .pareto import dominates, mark_front, pareto_front
from .sweep import Axes, ExploreError, explore

__all__ = ["Axes", "ExploreError", "dominates", "explore", "mark_front", "model_digest",
           "pareto_front", "stage_key", "tool_versions"]
