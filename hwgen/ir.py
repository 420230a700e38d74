"""The float model IR: what the frontend produces and quantization consumes.

Layouts follow PyTorch: ``w_ih`` rows are the cell's input-fed gate blocks in block order,
``w_hh`` rows its recurrent-fed blocks (see `hwgen.cells`): LSTM (i, f, g, o) on both, GRU
(r, z, n) on both, in the reset-after form n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).

Data layout: every function that takes sequences follows the imported model's own
convention unless told otherwise (`data_layout`): batch-major "NTI" (N sequences, T steps,
I features) for a torch module with ``batch_first=True`` (and for a model of unknown
origin), time-major "TNI" for ``batch_first=False``. Outputs come back in the same layout.

A model with an embedding (``nn.Embedding`` in front of its first layer) takes one token id
per step: its data are (N, T, 1) arrays of integer ids in 0..V-1 (`token_ids` checks them),
and its `input_size` is 1.
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


class TokenIdError(ValueError):
    """Token inputs that are not integer ids of the model's vocabulary."""


def token_ids(x, vocab_size: int) -> np.ndarray:
    """(N, T, 1) token ids (integers, as ints or floats) -> (N, T) int64, checked.

    The one rule of what an embedding model takes: every function that feeds one uses it.
    """
    v = np.asarray(x)
    if v.ndim != 3 or v.shape[2] != 1:
        raise TokenIdError(f"token inputs must be (N, T, 1) ids, not shape {v.shape}")
    ids = v[..., 0]
    if ids.dtype.kind == "f":
        if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            raise TokenIdError("token ids must be whole numbers")
    elif ids.dtype.kind not in "iu":
        raise TokenIdError(f"token ids must be integers, not {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise TokenIdError(f"token ids must lie in 0..{vocab_size - 1} (the vocabulary), "
                           f"not {ids.min()}..{ids.max()}")
    return ids


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
    """A stack of recurrent layers of one cell type and a Linear head, optionally behind an
    embedding table (V, E): token id t feeds the first layer ``embedding[t]``."""

    layers: list[RNNLayer]
    head: LinearHead
    head_mode: str = "last"
    meta: dict = field(default_factory=dict)
    embedding: np.ndarray | None = None

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
        if self.embedding is not None and (
                np.ndim(self.embedding) != 2
                or np.shape(self.embedding)[1] != self.layers[0].input_size):
            raise ValueError(f"The embedding must be (V, {self.layers[0].input_size}) for a "
                             f"first layer of {self.layers[0].input_size} inputs, not "
                             f"{np.shape(self.embedding)}")

    @property
    def cell(self) -> str:
        return self.layers[0].cell

    @property
    def spec(self) -> Cell:
        return get_cell(self.cell)

    @property
    def vocab_size(self) -> int | None:
        """Tokens of the embedding (V), or None for a model of feature inputs."""
        return None if self.embedding is None else len(self.embedding)

    @property
    def input_size(self) -> int:
        """Features per step of the model's data: one token id with an embedding."""
        return 1 if self.embedding is not None else self.layers[0].input_size

    @property
    def hidden_size(self) -> int:
        return self.layers[-1].hidden_size

    @property
    def output_size(self) -> int:
        return self.head.output_size

    def describe(self) -> str:
        sizes = "x".join(str(layer.hidden_size) for layer in self.layers)
        front = (f"V={self.vocab_size} E={self.layers[0].input_size}"
                 if self.embedding is not None else f"I={self.input_size}")
        return (f"{self.cell.upper()} {front} H={sizes} "
                f"layers={len(self.layers)} O={self.output_size} head={self.head_mode}")
