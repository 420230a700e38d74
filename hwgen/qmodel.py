"""The quantized model: integer weights, every tensor's format, the PWL tables.

This is the contract between `hwgen.quant` (which makes it), `hwgen.ref` (which runs it
in integers) and `hwgen.rtl` (which builds it). Rows are in accumulator order: the cell's
gate blocks (`hwgen.cells`), each H rows, e.g. LSTM (i, f, g, o); GRU (r, z, n_x, n_h): n_x
holds W_in x + b_in and n_h holds W_hn h + b_hn apart, because the reset gate multiplies only
the second. `w_x` has zero rows for blocks the input side does not feed (GRU n_h), `w_h` for
those the recurrent side does not feed (GRU n_x).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cells import Cell, get_cell
from .fixed import QFormat, bits_for
from .ir import token_ids
from .pwl import PWL


@dataclass
class QLayer:
    cell: str                   # a registered cell name (`hwgen.cells.CELLS`)
    x_fmt: QFormat
    h_fmt: QFormat
    c_fmt: QFormat | None       # the cell state of a cell that has one (LSTM); else None
    wx_fmt: QFormat
    wh_fmt: QFormat
    b_fmt: QFormat
    pre_fmt: QFormat            # gate pre-activations (PWL inputs)
    act_fmt: QFormat            # sigmoid / tanh outputs
    w_x: np.ndarray             # (R, I) int64
    w_h: np.ndarray             # (R, H) int64
    bias: np.ndarray            # (R,) int64 in b_fmt
    sigmoid: PWL | None = None  # the PWL tables the cell names (`Cell.pwls`); else None
    tanh: PWL | None = None
    tanh_c: PWL | None = None   # tanh of the cell state (input format c_fmt)
    extra_fmts: dict = field(default_factory=dict)  # formats of the cell's `calibrated`
    v_fmt: QFormat | None = None  # the cell's element-wise vectors (`Cell.vectors`), if any
    vectors: dict = field(default_factory=dict)     # name -> (H,) int64 in v_fmt

    @property
    def spec(self) -> Cell:
        """The cell's description."""
        return get_cell(self.cell)

    def block_fmt(self, block: str) -> QFormat:
        """The format gate block `block`'s pre-activation takes: ``pre_fmt``, or the
        calibrated format the cell names for it (`Cell.block_formats`)."""
        tensor = self.spec.block_formats.get(block)
        return self.pre_fmt if tensor is None else self.extra_fmts[tensor]

    @property
    def input_size(self) -> int:
        return self.w_x.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.w_h.shape[1]

    @property
    def rows(self) -> int:
        return self.w_x.shape[0]

    @property
    def acc_frac(self) -> int:
        """Fraction bits of the accumulators: the finer of the two product formats."""
        return max(self.wx_fmt.frac + self.x_fmt.frac, self.wh_fmt.frac + self.h_fmt.frac)

    @property
    def shift_x(self) -> int:
        """Exact left shift of an input-column product into the accumulator."""
        return self.acc_frac - self.wx_fmt.frac - self.x_fmt.frac

    @property
    def shift_h(self) -> int:
        return self.acc_frac - self.wh_fmt.frac - self.h_fmt.frac

    @property
    def bias_shift(self) -> int:
        return self.acc_frac - self.b_fmt.frac

    @property
    def acc_width(self) -> int:
        """Width that no sum b + W_x x + W_h h can overflow, for any inputs in format."""
        bound = (np.abs(self.bias) << self.bias_shift)
        bound = bound + (np.abs(self.w_x).sum(1) * (-self.x_fmt.min_int) << self.shift_x)
        bound = bound + (np.abs(self.w_h).sum(1) * (-self.h_fmt.min_int) << self.shift_h)
        return bits_for(-int(bound.max()), int(bound.max()))

    def gate_slice(self, name: str) -> slice:
        """Rows of gate block `name` in accumulator order."""
        return self.spec.block_slice(name, self.hidden_size)

    def weight_count(self) -> tuple[int, int]:
        """Number of real (not layout-padding) input and recurrent weights."""
        return self.spec.weight_count(self.input_size, self.hidden_size)

    def formats(self) -> dict:
        out = {k: getattr(self, k) for k in
               ("x_fmt", "h_fmt", "c_fmt", "wx_fmt", "wh_fmt", "b_fmt", "pre_fmt", "act_fmt")}
        out.update({f"{name}_fmt": fmt for name, fmt in self.extra_fmts.items()})
        if self.v_fmt is not None:
            out["v_fmt"] = self.v_fmt
        return {k: (v.to_json() if v is not None else None) for k, v in out.items()}


@dataclass
class QHead:
    in_fmt: QFormat
    w_fmt: QFormat
    b_fmt: QFormat
    out_fmt: QFormat
    weight: np.ndarray  # (O, H) int64
    bias: np.ndarray    # (O,) int64

    @property
    def acc_frac(self) -> int:
        return self.w_fmt.frac + self.in_fmt.frac

    @property
    def bias_shift(self) -> int:
        return self.acc_frac - self.b_fmt.frac

    @property
    def acc_width(self) -> int:
        bound = (np.abs(self.bias) << self.bias_shift) + \
            np.abs(self.weight).sum(1) * (-self.in_fmt.min_int)
        return bits_for(-int(bound.max()), int(bound.max()))

    def formats(self) -> dict:
        return {k: getattr(self, k).to_json() for k in ("in_fmt", "w_fmt", "b_fmt", "out_fmt")}


@dataclass
class QModel:
    layers: list[QLayer]
    head: QHead
    head_mode: str
    meta: dict = field(default_factory=dict)
    #: per layer {"x": TernaryMatrix, "h": TernaryMatrix} when the layer matrices are
    #: multi-level ternary (`hwgen.ternary.ternarize`): the planes and scales w_x/w_h are
    #: made of, which the hardware stores instead of w_x/w_h; None otherwise
    ternary: list | None = None
    #: the head's `hwgen.ternary.TernaryMatrix` when it has levels too (its weight is the
    #: matrix's ``weight()``); None: the head's weights are stored as they are
    ternary_head: object | None = None
    embedding: np.ndarray | None = None  # token ROM: (V, E) int64 in layer 0's x_fmt
    folded_dim: int | None = None  # folded: E of the embedding folded into layer 0's w_x

    @property
    def embedding_design(self) -> str | None:
        """"token_rom", "folded" (layer 0 takes the token one-hot), or None (no embedding)."""
        if self.embedding is not None:
            return "token_rom"
        return "folded" if self.folded_dim is not None else None

    @property
    def vocab_size(self) -> int | None:
        """Tokens of the embedding (V), or None for a model of feature inputs."""
        if self.embedding is not None:
            return len(self.embedding)
        return self.layers[0].input_size if self.folded_dim is not None else None

    def token_inputs(self, ids: np.ndarray) -> np.ndarray:
        """Layer 0's integer inputs (..., I) for token ids (...): the token's ROM row, or
        (folded) the one-hot vector whose one is 1.0 in x_fmt. The one rule of both."""
        if self.embedding is not None:
            return self.embedding[ids]
        return np.eye(self.vocab_size, dtype=np.int64)[ids] * self.one

    @property
    def one(self) -> int:
        """1.0 in layer 0's input format: a folded model's one-hot value."""
        return 1 << self.layers[0].x_fmt.frac

    @property
    def cell(self) -> str:
        return self.layers[0].cell

    @property
    def input_fmt(self) -> QFormat:
        """The first layer's input format (with an embedding: that of the table's values)."""
        return self.layers[0].x_fmt

    @property
    def input_size(self) -> int:
        """Values per step on the input stream: one token id with an embedding."""
        return 1 if self.embedding_design else self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.head.weight.shape[0]

    def quantize_inputs(self, x) -> np.ndarray:
        """Float inputs -> integers in `input_fmt`, element by element.

        The result keeps the shape, and so the layout, of `x`: (N, T, I), or (T, N, I) for
        a time-major model (see `hwgen.ir.data_layout`), ready for `hwgen.ref.run_int`.
        Token ids (N, T, 1) of a model with an embedding stay ids (int64).
        """
        if self.embedding_design:
            return token_ids(x, self.vocab_size)[..., None]
        return self.input_fmt.quantize(x)

    def decode_outputs(self, y) -> np.ndarray:
        """Integer outputs of `run_int` -> floats, element by element (layout kept)."""
        return self.head.out_fmt.to_float(y)

    def memory_bits(self) -> dict:
        """Bits of weight and bias storage, and of recurrent state, at their formats."""
        weights = state = floats_w = floats_s = 0
        for layer in self.layers:
            n_x, n_h = layer.weight_count()
            n_b = layer.rows
            weights += n_x * layer.wx_fmt.width + n_h * layer.wh_fmt.width \
                + n_b * layer.b_fmt.width
            floats_w += n_x + n_h + n_b
            n_v = sum(v.size for v in layer.vectors.values())
            if n_v:
                weights += n_v * layer.v_fmt.width
                floats_w += n_v
            h = layer.hidden_size
            state += h * layer.h_fmt.width + (h * layer.c_fmt.width if layer.c_fmt else 0)
            floats_s += h * (2 if layer.c_fmt else 1)
        o, hh = self.head.weight.shape
        weights += o * hh * self.head.w_fmt.width + o * self.head.b_fmt.width
        floats_w += o * hh + o
        if self.embedding is not None:  # the token ROM (see `embedding_memory`)
            weights += self.embedding.size * self.input_fmt.width
            floats_w += self.embedding.size
        return {"weight_bits": weights, "weight_bits_float32": 32 * floats_w,
                "state_bits": state, "state_bits_float32": 32 * floats_s}

    def embedding_memory(self) -> dict | None:
        """Bits of the input side of an embedding model, both ways of building it
        (`embedding_bits`), and the way it is built (`embedding_design`)."""
        design = self.embedding_design
        if design is None:
            return None
        first = self.layers[0]
        dim = self.embedding.shape[1] if design == "token_rom" else self.folded_dim
        # the ROM's values take layer 0's input format: a folded model's is as wide
        bits = embedding_bits(self.vocab_size, dim, first.spec.rows_fed("x", first.hidden_size),
                              first.x_fmt.width, first.wx_fmt.width)
        return {"design": design, "vocab_size": self.vocab_size, "embedding_dim": dim, **bits}


def embedding_bits(vocab: int, dim: int, rows: int, x_width: int, w_width: int) -> dict:
    """Memory of an embedding's input side, both ways (see docs/embeddings.md).

    token_rom: the (V, E) table at `x_width` plus layer 0's W_x (rows x E) at `w_width`.
    folded: W_x E precomputed, (rows x V) at `w_width`, layer 0 taking the token one-hot.
    With equal widths the ROM is the smaller whenever E < rows V / (V + rows).
    """
    table, w_x = vocab * dim * x_width, rows * dim * w_width
    return {"token_rom_bits": table + w_x, "token_rom_table_bits": table,
            "token_rom_wx_bits": w_x, "folded_bits": rows * vocab * w_width}
