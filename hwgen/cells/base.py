"""The description of a recurrent cell, read by every layer of hwgen instead of a cell name.

A `Cell` holds what differs between cells and nothing else:

* its gate blocks in accumulator order, each fed by the input side x, the recurrent side h,
  or both (`Block`); rows per layer, the blocks each side's columns visit, weight counts,
  the accumulator bias and weight layouts and the accumulator jumps of the RTL all follow;
* its state tensors ("h", and "c" for a cell with a cell state) and its PWL tables;
* its float step and its integer step (the bit-exact reference);
* its torch module and how that module's weights import;
* its element-wise program for the RTL, written against the small register-building
  vocabulary of `hwgen.rtl.elementwise.PipelineOps`, and that program's latency.

IR layout rule: a float layer's ``w_ih`` rows are the x-fed blocks in block order, ``w_hh``
rows the h-fed blocks, ``b_ih`` / ``b_hh`` alike (PyTorch's own layouts for LSTM and GRU). An
importer for a module with another gate order permutes rows into this order.
"""
from __future__ import annotations

from dataclasses import dataclass
import importlib

import numpy as np

SIDES = ("x", "h")
STATE_TENSORS = ("h", "c")   # what QLayer has formats for (h_fmt, c_fmt)
PWL_INPUTS = ("pre", "c")    # a PWL reads a pre-activation or the cell state


class UnknownCellError(ValueError):
    """A cell name that no registered `Cell` has."""


def sigmoid(x):
    """Float logistic function (numpy)."""
    return 1.0 / (1.0 + np.exp(-x))


def tensor_to_numpy(t) -> np.ndarray:
    """A torch tensor as a float64 numpy copy."""
    return t.detach().cpu().double().numpy().copy()


@dataclass(frozen=True)
class Block:
    """One gate block: `hidden` accumulator rows fed by side "x", side "h" or both ("xh")."""

    name: str
    sides: str

    def __post_init__(self):
        if self.sides not in ("xh", "x", "h"):
            raise ValueError(f"Block {self.name!r}: sides must be 'xh', 'x' or 'h', "
                             f"not {self.sides!r}")


@dataclass
class TrainedMatrix:
    """A torch matrix that fine-tuning (`hwgen.qat`) ternarizes row by row, and how its rows
    are the IR's: ``rows(w)`` (torch ops, differentiable) is the IR matrix's first rows,
    ``unrows`` its inverse; `fixed` the IR rows after them that nothing trains (SRU's
    identity highway when I == H), or None."""

    name: str
    rows: object = staticmethod(lambda w: w)
    unrows: object = staticmethod(lambda r: r)
    fixed: np.ndarray | None = None


def accumulator_jumps(blocks: tuple) -> list[tuple[int, int]]:
    """Where a side's block list leaves accumulator order, as (position, extra blocks) runs.

    The q-th group of a column of that side belongs to the side's ``q // groups``-th block;
    from each returned position on, its accumulator word lies ``extra * groups`` further.
    GRU h columns visit (r, z, n_h) = blocks (0, 1, 3): ``[(2, 1)]``.
    """
    jumps, previous = [], 0
    for position, block in enumerate(blocks):
        if block - position != previous:
            previous = block - position
            jumps.append((position, previous))
    return jumps


def recurrent_only_runs(blocks_x: tuple, blocks_h: tuple) -> list[tuple[int, int]]:
    """Runs [start, stop) of h-side positions whose blocks no input column feeds.

    A dense pass first touches those accumulator words at the first recurrent column (not
    column 0), so the bias is loaded there. GRU: n_h at h position 2: ``[(2, 3)]``.
    """
    runs: list[list[int]] = []
    for position, block in enumerate(blocks_h):
        if block in blocks_x:
            continue
        if runs and runs[-1][1] == position:
            runs[-1][1] = position + 1
        else:
            runs.append([position, position + 1])
    return [tuple(r) for r in runs]


class Cell:
    """A recurrent cell as data. Subclass it per cell (one file) and register an instance.

    Class attributes a subclass sets
    --------------------------------
    name : the registry key, e.g. "lstm"; also what design manifests call the cell.
    blocks : tuple of `Block` in accumulator order.
    state : state tensor names, "h" first; "c" for a cell state (QLayer.c_fmt).
    pwls : QLayer PWL attribute -> (function, input tensor), e.g.
        ``{"sigmoid": ("sigmoid", "pre"), "tanh_c": ("tanh", "c")}``.
    torch_module : dotted path of the torch module the cell imports from (and
        `hwgen.nn.RecurrentClassifier` builds), or None.
    calibrated : names of extra per-layer tensors with a calibrated format of their own
        (`QLayer.extra_fmts`), which `float_step` returns beside the new state, e.g.
        LiGRU's ReLU candidate ``("cand",)``.
    block_formats : block name -> one of `calibrated`: that block's pre-activation is
        requantized into this tensor's format instead of ``pre_fmt`` (LiGRU's unbounded
        ReLU candidate: ``{"a": "cand"}``; its values are then not in "pre").
    vectors : names of per-layer element-wise parameter vectors, H values each (SRU's
        v_f, v_r): `RNNLayer.vectors` / `QLayer.vectors` in one format `QLayer.v_fmt`
        (tensor "v"); `float_step` gets them as ``vectors=``, `int_step` from the layer,
        the RTL program in ``state_in`` under their names (a vector ROM read by element).

    Methods a subclass provides: `float_step`, `int_step`; for the RTL `elementwise` and
    `elementwise_latency`; for a torch module other than PyTorch's RNNBase layout,
    `import_layers` (and `unsupported_options` for options it cannot represent).
    """

    name: str = ""
    blocks: tuple = ()
    state: tuple = ("h",)
    pwls: dict = {}
    torch_module: str | None = None
    calibrated: tuple = ()
    block_formats: dict = {}
    vectors: tuple = ()

    def __init__(self):
        if not self.name or not self.blocks:
            raise ValueError(f"{type(self).__name__}: a cell needs a name and gate blocks")
        if self.state[:1] != ("h",) or not set(self.state) <= set(STATE_TENSORS):
            raise ValueError(f"Cell {self.name!r}: state must start with 'h' and hold only "
                             f"{STATE_TENSORS}, not {self.state}")
        for attr, (_, source) in self.pwls.items():
            if source not in PWL_INPUTS or (source != "pre" and source not in self.state):
                raise ValueError(f"Cell {self.name!r}: PWL {attr!r} reads {source!r}, "
                                 f"which is not 'pre' or one of its state tensors")
        for block, tensor in self.block_formats.items():
            if block not in self.block_names or tensor not in self.calibrated:
                raise ValueError(f"Cell {self.name!r}: block_formats maps {block!r} to "
                                 f"{tensor!r}; need a block and one of {self.calibrated}")

    def __repr__(self) -> str:
        return f"<Cell {self.name}: {', '.join(self.block_names)}>"

    # ------------------------------------------------------------ layout (derived)
    @property
    def block_names(self) -> tuple:
        return tuple(b.name for b in self.blocks)

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def rows(self, hidden: int) -> int:
        """Accumulator rows of a layer: blocks x H."""
        return self.n_blocks * hidden

    def side_blocks(self, side: str) -> tuple:
        """Indices of the blocks that `side` ("x" or "h") feeds, in accumulator order."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, not {side!r}")
        return tuple(k for k, b in enumerate(self.blocks) if side in b.sides)

    @property
    def blocks_x(self) -> tuple:
        return self.side_blocks("x")

    @property
    def blocks_h(self) -> tuple:
        return self.side_blocks("h")

    def rows_fed(self, side: str, hidden: int) -> int:
        """Real accumulator rows one column of `side` feeds (its MACs per fired column)."""
        return len(self.side_blocks(side)) * hidden

    def weight_count(self, input_size: int, hidden: int) -> tuple[int, int]:
        """Real (not layout-padding) input and recurrent weights of a layer."""
        return self.rows_fed("x", hidden) * input_size, self.rows_fed("h", hidden) * hidden

    def block_slice(self, name: str, hidden: int) -> slice:
        k = self.block_names.index(name)
        return slice(k * hidden, (k + 1) * hidden)

    @property
    def extra_state(self) -> tuple:
        """State tensors besides h (each has its own calibrated format)."""
        return self.state[1:]

    @property
    def has_cell_state(self) -> bool:
        return "c" in self.state

    def quantized_tensors(self) -> tuple:
        """Per-layer tensor names of `hwgen.quant.tensor_names` (after "l<k>.")."""
        return ("wx", "wh", "b", "h", "pre", "act") + self.extra_state + self.calibrated \
            + (("v",) if self.vectors else ())

    def accumulator_weights(self, w_ih: np.ndarray, w_hh: np.ndarray,
                            hidden: int) -> tuple[np.ndarray, np.ndarray]:
        """IR-layout weights -> (W_x, W_h) with a row per accumulator row (zero where the
        side does not feed the block)."""
        return (self._spread(w_ih, self.blocks_x, hidden),
                self._spread(w_hh, self.blocks_h, hidden))

    def _spread(self, w: np.ndarray, blocks: tuple, hidden: int) -> np.ndarray:
        if blocks == tuple(range(self.n_blocks)):
            return w
        out = np.zeros((self.rows(hidden),) + w.shape[1:], dtype=w.dtype)
        for position, block in enumerate(blocks):
            out[block * hidden:(block + 1) * hidden] = w[position * hidden:(position + 1) * hidden]
        return out

    def accumulator_bias(self, b_ih: np.ndarray, b_hh: np.ndarray, hidden: int) -> np.ndarray:
        """IR-layout biases -> one float bias per accumulator row (b_ih + b_hh where both
        sides feed a block)."""
        parts = []
        for block in range(self.n_blocks):
            terms = [b[p * hidden:(p + 1) * hidden]
                     for b, blocks in ((b_ih, self.blocks_x), (b_hh, self.blocks_h))
                     for p, k in enumerate(blocks) if k == block]
            parts.append(terms[0] + terms[1] if len(terms) == 2 else
                         terms[0] if terms else np.zeros(hidden))
        return np.concatenate(parts)

    # ------------------------------------------------------------ numerics (per cell)
    def float_step(self, xw: np.ndarray, hw: np.ndarray, state: dict) -> tuple[dict, np.ndarray]:
        """One float step for a batch.

        Parameters
        ----------
        xw : (N, len(blocks_x) H) W_ih x + b_ih, IR layout.
        hw : (N, len(blocks_h) H) W_hh h + b_hh, IR layout.
        state : state tensor name -> (N, H) floats.

        Returns
        -------
        (new state (plus each of `calibrated` by name), pre-activations to calibrate the
        "pre" format on, (N, any))
        """
        raise NotImplementedError(f"cell {self.name!r} has no float step")

    def int_step(self, layer, gates: dict, state: dict) -> tuple[dict, dict]:
        """One integer step for a batch: `hwgen.ref.layer_activate` after requantization.

        Parameters
        ----------
        layer : the QLayer (formats and PWL tables).
        gates : block name -> (N, H) pre-activations in ``layer.pre_fmt``.
        state : state tensor name -> (N, H) integers in their formats.

        Returns
        -------
        (new state, every intermediate tensor by name for a trace)
        """
        raise NotImplementedError(f"cell {self.name!r} has no integer step")

    # ------------------------------------------------------------ RTL (per cell)
    @property
    def has_rtl(self) -> bool:
        return type(self).elementwise is not Cell.elementwise

    def elementwise_latency(self, pwl_latency: int, product_latency: int = 1) -> int:
        """Cycles from the element-wise unit's input to its new state, when a PWL takes
        `pwl_latency` cycles and a product `product_latency` (`PipelineOps`)."""
        raise NotImplementedError(f"cell {self.name!r} has no element-wise RTL")

    def elementwise(self, ops, layer, pre: list, state_in: dict) -> dict:
        """Build the element-wise pipeline of one element a cycle.

        Parameters
        ----------
        ops : `hwgen.rtl.elementwise.PipelineOps` (registers, delays, products, PWLs,
            requantize).
        layer : the QLayer.
        pre : per block, its pre-activation (in ``layer.block_fmt(name)``, ``pre_fmt``
            unless `block_formats` names another) 2 cycles after the accumulators entered.
        state_in : state tensor name -> its previous value, as it entered.

        Returns
        -------
        state tensor name -> its new value, registered by the unit on the next edge; the
        whole takes `elementwise_latency` cycles.
        """
        raise NotImplementedError(f"cell {self.name!r} has no element-wise RTL")

    # ------------------------------------------------------------ torch
    def torch_class(self):
        """The torch module class of this cell (imported on first use), or None."""
        if self.torch_module is None:
            return None
        module, _, name = self.torch_module.rpartition(".")
        return getattr(importlib.import_module(module), name)

    @property
    def torch_label(self) -> str | None:
        """How messages name the torch module, e.g. "nn.LSTM"."""
        return self.torch_module.removeprefix("torch.") if self.torch_module else None

    def make_torch_module(self, input_size: int, hidden_size: int, num_layers: int = 1):
        """A batch-first torch module of this cell (for `hwgen.nn.RecurrentClassifier`)."""
        cls = self.torch_class()
        if cls is None:
            raise UnknownCellError(f"Cell {self.name!r} has no torch module")
        return cls(input_size, hidden_size, num_layers=num_layers, batch_first=True)

    def unsupported(self, rnn) -> str | None:
        """Why `rnn` cannot be imported (for "Unsupported: <reason>"), or None."""
        if getattr(rnn, "bidirectional", False):
            return f"bidirectional {type(rnn).__name__}"
        reason = self.unsupported_options(rnn)
        if reason:
            return reason
        if getattr(rnn, "dropout", 0) and rnn.training:
            return f"dropout={rnn.dropout} at inference (call model.eval() first)"
        return None

    def unsupported_options(self, rnn) -> str | None:
        """Cell-specific options the import cannot represent (none by default)."""
        return None

    def trained_matrices(self, rnn) -> list:
        """Per layer, (input, recurrent) `TrainedMatrix` of `rnn` (None: no such matrix):
        in PyTorch's RNNBase layout its 2-D parameters in order, rows as the IR's."""
        names = [n for n, p in rnn.named_parameters() if p.dim() == 2]
        return [(TrainedMatrix(names[2 * k]), TrainedMatrix(names[2 * k + 1]))
                for k in range(len(names) // 2)]

    def import_layers(self, rnn) -> list:
        """Float IR layers of a module in PyTorch's RNNBase layout (weight_ih_l<k>, ...)."""
        from ..ir import RNNLayer

        layers = []
        for k in range(rnn.num_layers):
            w_ih = tensor_to_numpy(getattr(rnn, f"weight_ih_l{k}"))
            w_hh = tensor_to_numpy(getattr(rnn, f"weight_hh_l{k}"))
            zeros = np.zeros(w_ih.shape[0])
            b_ih = tensor_to_numpy(getattr(rnn, f"bias_ih_l{k}")) if rnn.bias else zeros
            b_hh = tensor_to_numpy(getattr(rnn, f"bias_hh_l{k}")) if rnn.bias else zeros.copy()
            layers.append(RNNLayer(self.name, w_ih, w_hh, b_ih, b_hh))
        return layers
