"""Multi-level ternary (and binary) weights: the fit, the integer model, memory and operations.

A weight matrix W (R rows, C columns) is approximated by L levels, W ~ sum_i alpha_i T_i, with
T_i in {-1, 0, +1} (ternary) or {-1, +1} (binary) and one scale alpha_i per row and level.
Level i fits the residual left by levels < i (`fit_levels`).

Fit of one level (TWN style: closed form, no parameters to learn): for the residual R of a
row, threshold D = 0.7 mean|R| (over the row's unpruned weights), T = sign(R) [|R| > D],
alpha = mean |R| over T's nonzeros, rounded to the level's fixed-point format before the next
residual is taken. Binary levels take T = sign(R) (+1 at zero) and alpha = mean |R|. A fitted
scale follows the latent weights as they are trained and pruned and doubles no parameters;
a learned scale would add L R parameters and its own learning rate for no clear gain on
matrices this small.

Integer contract (what the reference computes and the hardware must equal, bit for bit).
Per matrix: planes T_i (int8 in {-1, 0, 1}, accumulator row layout of `hwgen.qmodel`) and
scales a_i (R,) int64 in format A_i = Q(alpha_bits, f_i), one per level; F = max_i f_i.

    W_int[r, j] = sum_i (a_i[r] << (F - f_i)) T_i[r, j]          in Q(width, F)

is the QLayer's ``w_x`` (or ``w_h``) and F its ``wx_fmt.frac``, so `hwgen.ref.run_int` runs the
ternary model unchanged. The hardware instead accumulates per level S_i[r] = sum_j T_i[r, j]
x_j (add, subtract or skip: no multiplier) and applies the scale once per row:
acc[r] += sum_i (a_i[r] << (F - f_i)) S_i[r]. Both are sums of the same integer products, so
they are equal exactly (`level_sums`, tested on random data).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import math

import numpy as np

from .fixed import QFormat, bits_for, frac_for_range
from .ir import ModelIR, RNNLayer
from .qmodel import QModel
from .quant import QuantConfig, QuantConfigError, quantize_model

DELTA = 0.7          # TWN threshold factor: D = DELTA * mean |R|
ALPHA_BITS = 8       # width of the per-row scales


class TernaryError(QuantConfigError):
    """A ternary option is out of range, or the model cannot take ternary weights."""


def alpha_format(alpha: np.ndarray, bits: int = ALPHA_BITS) -> QFormat:
    """The format of one level's scales: the finest that holds the largest without clipping."""
    return QFormat(bits, frac_for_range(float(np.max(alpha, initial=0.0)), bits))


def fit_levels(w, levels: int, mask=None, binary: bool = False, alpha_bits: int = ALPHA_BITS):
    """Fit `levels` residual ternary (or binary) levels to the rows of `w`.

    Parameters
    ----------
    w : (R, C) floats.
    levels : number of levels L (1 or more).
    mask : (R, C) bools, False where a weight is pruned (zero in every level); None keeps all.
        Ignored for binary levels, which cannot hold a zero.
    binary : {-1, +1} levels instead of {-1, 0, +1}.
    alpha_bits : width of the scale formats.

    Returns
    -------
    planes : (L, R, C) int8.
    alpha : (L, R) int64, level i in format ``fmts[i]``.
    fmts : list of L QFormat.
    """
    w = np.asarray(w, dtype=np.float64)
    keep = np.ones(w.shape, bool) if mask is None or binary else np.asarray(mask, bool)
    resid = np.where(keep, w, 0.0)
    count = np.maximum(keep.sum(1), 1)
    planes, alphas, fmts = [], [], []
    for _ in range(levels):
        mag = np.abs(resid)
        if binary:
            t = np.where(resid >= 0, 1, -1)
            a = mag.mean(1)
        else:
            thresh = DELTA * mag.sum(1) / count
            t = (np.sign(resid) * (mag > thresh[:, None])).astype(np.int64)
            nz = np.abs(t).sum(1)
            a = np.where(nz > 0, (mag * np.abs(t)).sum(1) / np.maximum(nz, 1), 0.0)
        fmt = alpha_format(a, alpha_bits)
        a_int = fmt.quantize(a)
        resid = resid - fmt.to_float(a_int)[:, None] * t
        planes.append(t.astype(np.int8))
        alphas.append(a_int)
        fmts.append(fmt)
    return np.stack(planes), np.stack(alphas), fmts


@dataclass
class TernaryMatrix:
    """One matrix as L planes and per-row integer scales (see the module's contract).

    Attributes
    ----------
    planes : (L, R, C) int8 in {-1, 0, 1}.
    alpha : (L, R) int64; level i in ``fmts[i]``.
    fmts : L QFormat.
    real_rows : rows that hold weights (the rest are accumulator-layout padding, all zero).
    """

    planes: np.ndarray
    alpha: np.ndarray
    fmts: list
    real_rows: np.ndarray

    @property
    def levels(self) -> int:
        return self.planes.shape[0]

    @property
    def frac(self) -> int:
        """F: the common fraction of the effective weight."""
        return max(f.frac for f in self.fmts)

    def aligned_alpha(self) -> np.ndarray:
        """(L, R) scales shifted to the common fraction F (exact left shifts)."""
        return np.stack([a << (self.frac - f.frac) for a, f in zip(self.alpha, self.fmts)])

    def weight(self) -> np.ndarray:
        """W_int = sum_i (a_i << (F - f_i)) T_i, (R, C) int64 in fraction F."""
        return np.einsum("lr,lrc->rc", self.aligned_alpha(), self.planes.astype(np.int64))

    def weight_format(self) -> QFormat:
        w = self.weight()
        return QFormat(max(2, bits_for(int(w.min(initial=0)), int(w.max(initial=0)))), self.frac)

    def level_sums(self, x: np.ndarray) -> np.ndarray:
        """What the hardware does: per-level sums S_i = T_i x (add / subtract / skip), then
        sum_i a_i S_i once per row. x (N, C) int64 -> (N, R) int64, equal to x @ W_int.T."""
        x = np.asarray(x, dtype=np.int64)
        sums = np.einsum("nc,lrc->lnr", x, self.planes.astype(np.int64))
        return np.einsum("lr,lnr->nr", self.aligned_alpha(), sums)

    def counts(self) -> dict:
        """Weights, words nonzero in some level, and nonzero digits per level (real rows)."""
        p = self.planes[:, self.real_rows]
        return {"weights": int(p[0].size), "rows": int(p.shape[1]), "cols": int(p.shape[2]),
                "nonzero_words": int(np.any(p != 0, axis=0).sum()),
                "nonzero_digits": [int(np.count_nonzero(q)) for q in p]}


@dataclass
class TernaryModel:
    """A QModel whose layer matrices are Σ α_i T_i, with the planes and scales kept alongside.

    Attributes
    ----------
    qm : the QModel (`hwgen.ref.run_int` runs it as is).
    matrices : per layer {"x": TernaryMatrix, "h": TernaryMatrix or None}.
    binary : whether the levels are binary.
    pruned : per matrix name ("l0.wx", ..., "head.w") the fraction of weights pruned.
    head : the head's TernaryMatrix when it has levels too (``qm.ternary_head``), else
        None (its weights are the 8-bit PTQ's).
    """

    qm: QModel
    matrices: list
    binary: bool
    pruned: dict = field(default_factory=dict)
    head: TernaryMatrix | None = None

    @property
    def levels(self) -> int:
        return self.matrices[0]["x"].levels

    def named(self):
        """(name, TernaryMatrix) for every matrix, e.g. ("l0.wx", ...)."""
        for k, mats in enumerate(self.matrices):
            for side in ("x", "h"):
                if mats[side] is not None:
                    yield f"l{k}.w{side}", mats[side]
        if self.head is not None:
            yield "head.w", self.head


def _spread(spec, side: str, a: np.ndarray, hidden: int) -> np.ndarray:
    """IR rows -> accumulator rows for one side (zero rows where the side feeds no block)."""
    other = np.zeros((spec.rows_fed("h" if side == "x" else "x", hidden),) + a.shape[1:],
                     a.dtype)
    pair = (a, other) if side == "x" else (other, a)
    return spec.accumulator_weights(*pair, hidden)[0 if side == "x" else 1]


def _fit_with_value(w, mask, levels, binary, alpha_bits):
    """`fit_levels` of `w`, and the exact float value of its levels (w's layout)."""
    planes, alpha, fmts = fit_levels(w, levels, mask, binary, alpha_bits)
    value = sum(f.to_float(a)[:, None] * p for p, a, f in zip(planes, alpha, fmts))
    return planes, alpha, fmts, value


def _ternary_matrix(spec, side, w, mask, levels, binary, alpha_bits, hidden):
    """The TernaryMatrix (accumulator layout) and its exact float value (IR layout)."""
    planes, alpha, fmts, value = _fit_with_value(w, mask, levels, binary, alpha_bits)
    spread = lambda a: _spread(spec, side, a, hidden)  # noqa: E731
    real = spread(np.ones(w.shape[0], bool))
    return TernaryMatrix(np.stack([spread(p) for p in planes]),
                         np.stack([spread(a) for a in alpha]), fmts, real), value


def ternarize(ir: ModelIR, x_calib, levels: int, binary: bool = False, masks=None,
              alpha_bits: int = ALPHA_BITS, act_bits: int = 8, layout: str | None = None,
              head: bool = False, head_mask=None) -> TernaryModel:
    """Fit the levels to every layer matrix of `ir` and quantize the rest as PTQ does.

    Parameters
    ----------
    ir : the float model (the latent weights of QAT, or a float model for post-training).
    x_calib : calibration sequences (see `hwgen.quant.quantize_model`).
    levels : L, 1 to 4.
    binary : {-1, +1} levels (no pruning).
    masks : per layer (mask_ih, mask_hh) bools in IR layout, False where pruned; None: a
        weight exactly zero counts as pruned.
    alpha_bits, act_bits : widths of the scales and of activations; biases, the head and
        element-wise vectors get `QuantConfig`'s defaults (16-bit biases, 8-bit head).
    layout : of `x_calib`.
    head : the head's weights get levels too (its rows are its outputs); else 8-bit PTQ.
    head_mask : (O, H) bools, False where a head weight is pruned; None: a weight exactly
        zero counts as pruned.

    Returns
    -------
    TernaryModel
        Its QModel's ``w_x``/``w_h`` are exactly the matrices' ``weight()``; calibration
        runs on the ternary float model, so activations are calibrated on what is run.
    """
    if not isinstance(levels, (int, np.integer)) or not 1 <= levels <= 4:
        raise TernaryError(f"levels must be an integer in 1..4, not {levels!r}")
    spec = ir.spec
    # a cell with no recurrent matrix (SRU) has levels on its input side only
    sides = ("x", "h") if spec.blocks_h else ("x",)
    mats, layers, overrides, pruned = [], [], {}, {}
    for k, layer in enumerate(ir.layers):
        hsz = layer.hidden_size
        pair = masks[k] if masks is not None else (layer.w_ih != 0, layer.w_hh != 0)
        mats.append({"x": None, "h": None})
        eff = [layer.w_ih, layer.w_hh]
        for n, side in enumerate(sides):
            w = (layer.w_ih, layer.w_hh)[n]
            t, eff[n] = _ternary_matrix(spec, side, w, pair[n], levels, binary, alpha_bits,
                                        hsz)
            mats[-1][side] = t
            overrides[f"l{k}.w{side}"] = t.weight_format()
            pruned[f"l{k}.w{side}"] = 0.0 if binary else float(1 - np.mean(pair[n]))
        layers.append(RNNLayer(layer.cell, eff[0], eff[1], layer.b_ih, layer.b_hh,
                               dict(layer.vectors)))
    head_t, head_ir = None, ir.head
    if head:
        w = ir.head.weight
        mask = w != 0 if head_mask is None else np.asarray(head_mask, bool)
        planes, alpha, fmts, value = _fit_with_value(w, mask, levels, binary, alpha_bits)
        head_t = TernaryMatrix(planes, alpha, fmts, np.ones(w.shape[0], bool))
        head_ir = dataclasses.replace(ir.head, weight=value)
        overrides["head.w"] = head_t.weight_format()
        pruned["head.w"] = 0.0 if binary else float(1 - np.mean(mask))
    eff_ir = ModelIR(layers, head_ir, ir.head_mode, dict(ir.meta), ir.embedding)
    qm = quantize_model(eff_ir, x_calib, QuantConfig(weight_bits=8, act_bits=act_bits,
                                                     overrides=overrides), layout)
    for ql, m in zip(qm.layers, mats):
        if not (np.array_equal(ql.w_x, m["x"].weight()) and
                (m["h"] is None or np.array_equal(ql.w_h, m["h"].weight()))):
            raise TernaryError(f"cell {ir.cell}: its accumulator layout is not row for row")
    if head_t is not None and not np.array_equal(qm.head.weight, head_t.weight()):
        raise TernaryError("the head's levels are not its quantized weights")
    qm.meta["ternary"] = {"levels": levels, "binary": binary, "alpha_bits": alpha_bits,
                          "head": head}
    qm.ternary, qm.ternary_head = mats, head_t
    return TernaryModel(qm, mats, binary, pruned, head_t)


def _index_bits(n: int) -> int:
    """Unsigned bits to tell n things apart (at least 1)."""
    return max(1, math.ceil(math.log2(max(n, 2))))


def matrix_bits(t: TernaryMatrix, binary: bool = False) -> dict:
    """Storage of one matrix, every bit counted; the smaller of two forms is the one stored.

    * dense: L planes of 2 bits per weight (1 for binary);
    * sparse: compressed columns of words: per column a count (bits for 0..R), per stored
      word (nonzero in some level) its row index and its L digits at 2 bits each.

    Scales: L x R x alpha bits in both forms. Accumulator padding rows are not counted.
    """
    c = t.counts()
    digit = 1 if binary else 2
    dense = digit * t.levels * c["weights"]
    sparse = c["cols"] * _index_bits(c["rows"] + 1) + \
        c["nonzero_words"] * (_index_bits(c["rows"]) + digit * t.levels)
    scales = sum(f.width for f in t.fmts) * c["rows"]
    form = "sparse" if sparse < dense and not binary else "dense"
    return {"dense": dense, "sparse": sparse, "form": form,
            "planes": min(dense, sparse) if not binary else dense, "scales": scales}


def memory_report(tm: TernaryModel) -> dict:
    """Weight storage of the ternary model in bits: matrices (planes or sparse form, scales)
    and the rest at their PTQ formats (biases, element-wise vectors, head), and float32."""
    base = tm.qm.memory_bits()
    dense_mats = 0
    for ql in tm.qm.layers:
        n_x, n_h = ql.weight_count()
        dense_mats += n_x * ql.wx_fmt.width + n_h * ql.wh_fmt.width
    if tm.head is not None:
        dense_mats += tm.qm.head.weight.size * tm.qm.head.w_fmt.width
    per = {name: matrix_bits(t, tm.binary) for name, t in tm.named()}
    mats = sum(p["planes"] + p["scales"] for p in per.values())
    return {"matrices": per, "matrix_bits": mats, "other_bits": base["weight_bits"] - dense_mats,
            "weight_bits": base["weight_bits"] - dense_mats + mats,
            "weight_bits_float32": base["weight_bits_float32"]}


def op_counts(tm: TernaryModel) -> dict:
    """Add/subtract operations of the ternary matrices per step (the layers', and the head's
    when it has levels), against multi-level binary.

    Multi-level binary at the same L visits every weight in every level: L N operations (N
    real weights). Word level: a weight zero in every level is skipped, the others cost L
    (one per level): L x nonzero words. Bit level: only nonzero digits cost one: the sum
    over levels of nonzero digits. Speedups are binary operations over each.
    """
    n = words = digits = 0
    for _, t in tm.named():
        c = t.counts()
        n += c["weights"]
        words += c["nonzero_words"]
        digits += sum(c["nonzero_digits"])
    big = tm.levels * n
    return {"weights": n, "binary_ops": big, "word_ops": tm.levels * words, "bit_ops": digits,
            "word_speedup": big / max(tm.levels * words, 1), "bit_speedup": big / max(digits, 1)}
