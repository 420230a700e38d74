"""The float model IR: what the frontend produces and quantization consumes.

Layouts follow PyTorch: ``w_ih`` rows are the cell's input-fed gate blocks in block order,
``w_hh`` rows its recurrent-fed blocks (see `hwgen.cells`): LSTM (i, f, g, o) on both, GRU
(r, z, n) on both, in the reset-after form n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).

Data layout: every function that takes sequences follows the imported model's own
convention unless told otherwise (`data_layout`): batch-major "NTI" (N sequences, T steps,
I features) for a torch module with ``batch_first=True`` (and for a model of unknown
origin), time-major "TNI" for ``batch_first=False``. Outputs come back in the same layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cells import CELLS, Cell, get_cell

HEAD_MODES = ("last", "every")
LAYOUTS = ("NTI", "TNI")


def data_layout(meta: dict, layout: str | None = None) -> str:
    """The layout of a model's data arrays: the one rule every data-taking function uses.

    Parameters
    ----------
    meta : the model's meta (`ModelIR.meta` or `QModel.meta`); its "batch_first" is what
        `from_torch` recorded.
    layout : "NTI" (batch-major), "TNI" (time-major), or None for the model's own
        ("TNI" if it was imported with ``batch_first=False``, else "NTI").

    Returns
    -------
    str
        "NTI" or "TNI".
    """
    if layout is None:
        return "NTI" if meta.get("batch_first", True) else "TNI"
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS} or None, not {layout!r}")
    return layout


def swap_layout(x, layout: str) -> np.ndarray:
    """Batch-major <-> `layout`: swaps the first two axes for "TNI" (its own inverse)."""
    x = np.asarray(x)
    return np.ascontiguousarray(np.swapaxes(x, 0, 1)) if layout == "TNI" else x


def shape_name(layout: str, features) -> str:
    """How an array in `layout` is described in messages, e.g. "(N, T, 5)"."""
    return f"({', '.join(layout[:2])}, {features})"


@dataclass
class RNNLayer:
    """One recurrent layer in float (numpy float64)."""

    cell: str         # a registered cell name (`hwgen.cells.CELLS`)
    w_ih: np.ndarray  # (input-fed blocks * H, I)
    w_hh: np.ndarray  # (recurrent-fed blocks * H, H)
    b_ih: np.ndarray  # (input-fed blocks * H,)
    b_hh: np.ndarray  # (recurrent-fed blocks * H,)
    vectors: dict = field(default_factory=dict)  # the cell's `Cell.vectors` -> (H,)

    @property
    def spec(self) -> Cell:
        """The cell's description."""
        return get_cell(self.cell)

    @property
    def input_size(self) -> int:
        return self.w_ih.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.w_hh.shape[1]


def _check_layer_shapes(k: int, layer: RNNLayer) -> None:
    """Rows of each side's weights and biases: the blocks that side feeds, times H."""
    hsz, cell = layer.hidden_size, layer.spec
    for side, w, b in (("x", layer.w_ih, layer.b_ih), ("h", layer.w_hh, layer.b_hh)):
        rows = cell.rows_fed(side, hsz)
        if w.shape[0] != rows or b.shape != (rows,):
            raise ValueError(f"Layer {k} ({cell.name}, H={hsz}): the {side} side feeds "
                             f"{rows} rows, but its weights are {w.shape} and bias {b.shape}")
    shapes = {name: np.shape(v) for name, v in layer.vectors.items()}
    if shapes != {name: (hsz,) for name in cell.vectors}:
        raise ValueError(f"Layer {k} ({cell.name}, H={hsz}): element-wise vectors "
                         f"{cell.vectors} of {hsz} values each, not {shapes}")


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
        for k, layer in enumerate(self.layers):
            _check_layer_shapes(k, layer)

    @property
    def cell(self) -> str:
        return self.layers[0].cell

    @property
    def spec(self) -> Cell:
        return get_cell(self.cell)

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
