"""Shared helpers of the benchmarks: a random model of a given shape, timing."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def random_task_model(cell: str, input_size: int, hidden: int, out: int = 10, layers: int = 1,
                      head_mode: str = "last", seed: int = 0):
    """A seeded random PyTorch model imported to the IR, with smooth random inputs."""
    import torch

    from hwgen.frontend import from_torch
    from hwgen.nn import RecurrentClassifier
    torch.manual_seed(seed)
    model = RecurrentClassifier(cell, input_size, hidden, out, num_layers=layers,
                                head_mode=head_mode).eval()
    return from_torch(model)


def smooth_inputs(n: int, t_len: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.cumsum(rng.normal(0, 0.2, (n, t_len, size)), axis=1), -2, 2)


def timed(fn, *args, repeat: int = 3, **kwargs):
    """Best wall time of `repeat` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, result
