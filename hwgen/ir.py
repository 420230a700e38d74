"""The float model IR: what the frontend produces and quantization consumes.

Gate order and layouts follow PyTorch: LSTM rows are (i, f, g, o), GRU rows (r, z, n) in
the reset-after form n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CELLS = {"lstm": 4, "gru": 3}  # gates per cell
HEAD_MODES = ("last", "every")


@dataclass
class RNNLayer:
    """One recurrent layer in float (numpy float64)."""

    cell: str
    w_ih: np.ndarray  # (gates*H, I)
    w_hh: np.ndarray  # (gates*H, H)
    b_ih: np.ndarray  # (gates*H,)
    b_hh: np.ndarray  # (gates*H,)

    @property
    def input_size(self) -> int:
        return self.w_ih.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.w_hh.shape[1]


@dataclass
class LinearHead:
    weight: np.ndarray  # (O, H)
    bias: np.ndarray    # (O,)

    @property
    def output_size(self) -> int:
        return self.weight.shape[0]


@dataclass
class ModelIR:
    """A stack of recurrent layers of one cell type and a Linear head."""

    layers: list[RNNLayer]
    head: LinearHead
    head_mode: str = "last"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.head_mode not in HEAD_MODES:
            raise ValueError(f"head_mode must be one of {HEAD_MODES}, not {self.head_mode!r}")
        if not self.layers:
            raise ValueError("A model needs at least one recurrent layer")
        cells = {layer.cell for layer in self.layers}
        if len(cells) != 1 or not cells <= set(CELLS):
            raise ValueError(f"All layers must share one cell type of {sorted(CELLS)}, "
                             f"not {sorted(cells)}")

    @property
    def cell(self) -> str:
        return self.layers[0].cell

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def hidden_size(self) -> int:
        return self.layers[-1].hidden_size

    @property
    def output_size(self) -> int:
        return self.head.output_size

    def describe(self) -> str:
        sizes = "x".join(str(layer.hidden_size) for layer in self.layers)
        return (f"{self.cell.upper()} I={self.input_size} H={sizes} "
                f"layers={len(self.layers)} O={self.output_size} head={self.head_mode}")
