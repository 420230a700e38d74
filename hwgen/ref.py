"""Reference models: the float path of the IR, and the bit-exact integer path of a QModel.

The integer path is the definition the hardware is checked against, bit for bit. It is
batched over sequences with numpy; every operation is one of `hwgen.fixed`'s rules.

Integer step of one layer (formats from the QLayer, all shifts exact or round-half-up):

    acc  = (bias << bias_shift) + (W_x @ x << shift_x) + (W_h @ h << shift_h)
    pre  = requantize(acc, acc_frac, pre_fmt)     per row (or the block's `Cell.block_formats`)
    new state = the cell's `Cell.int_step` on pre's gate blocks (see `hwgen.cells`)

The float step of a layer is the cell's `Cell.float_step`.

Head: y = requantize((b << bias_shift) + W h, out_fmt), on the last step or every step.

A model with an embedding takes token ids (N, T, 1): the first layer's input at a step is the
table's row of that step's token (float table, or integer table in the first layer's x_fmt),
and everything after it, delta included, runs on that embedded vector. A quantized model
whose embedding is folded into layer 0 (`QModel.embedding_design`) takes the token one-hot
instead; its input side fires on every token change, whatever the threshold.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixed import requantize
from .ir import ModelIR, RNNLayer, data_layout, shape_name, swap_layout, token_ids
from .qmodel import QHead, QLayer, QModel

# float64 holds integers exactly below 2**53: use BLAS when the accumulator bound allows
_EXACT_FLOAT_BITS = 52


# ---------------------------------------------------------------- float path
def float_layer(layer: RNNLayer, x: np.ndarray, record: dict | None = None) -> np.ndarray:
    """Run one float layer over x (N, T, I) -> h sequence (N, T, H).

    `record` (a dict) receives per step the cell's pre-activations under "pre" and each
    state tensor besides h, and each of the cell's `calibrated` tensors, under its name
    (e.g. "c"): what calibration measures.
    """
    cell = layer.spec
    n, t_len, _ = x.shape
    hsz = layer.hidden_size
    state = {name: np.zeros((n, hsz)) for name in cell.state}
    xw = x @ layer.w_ih.T + layer.b_ih  # input part of every step at once
    params = {"vectors": layer.vectors} if cell.vectors else {}
    out = np.empty((n, t_len, hsz))
    for t in range(t_len):
        hw = state["h"] @ layer.w_hh.T + layer.b_hh
        state, pre = cell.float_step(xw[:, t], hw, state, **params)
        if record is not None:
            record.setdefault("pre", []).append(pre)
            for name in cell.extra_state + cell.calibrated:
                record.setdefault(name, []).append(state[name])
        out[:, t] = state["h"]
    return out


def _check_shape(v: np.ndarray, features: int, lay: str, kind: str) -> None:
    if v.ndim != 3 or v.shape[2] != features:
        raise ValueError(f"Inputs must be {shape_name(lay, features)} {kind}, "
                         f"not shape {v.shape}")


def run_float(model: ModelIR, x, record: list | None = None,
              layout: str | None = None) -> np.ndarray:
    """Float forward pass.

    Parameters
    ----------
    model : the float model.
    x : (N, T, I) floats, or (T, N, I) for a time-major layout (see `hwgen.ir.data_layout`).
    record : if a list, receives one dict per layer with its input, h, and pre-activations
        (batch-major).
    layout : "NTI", "TNI", or None for the model's own (time-major if imported from a torch
        module with batch_first=False).

    Returns (N, O) (head on the last step), or (N, T, O) / (T, N, O) in the input's layout.
    """
    lay = data_layout(model.meta, layout)
    v = np.asarray(x, dtype=np.float64)
    _check_shape(v, model.input_size, lay, "floats")
    v = swap_layout(v, lay)
    if model.embedding is not None:
        v = np.asarray(model.embedding, dtype=np.float64)[token_ids(v, model.vocab_size)]
    for layer in model.layers:
        rec = {"x": v} if record is not None else None
        v = float_layer(layer, v, rec)
        if rec is not None:
            rec["h"] = v
            record.append(rec)
    if model.head_mode == "last":
        return v[:, -1] @ model.head.weight.T + model.head.bias
    return swap_layout(v @ model.head.weight.T + model.head.bias, lay)


# ---------------------------------------------------------------- integer path
def _int_matmul(a: np.ndarray, w: np.ndarray, bound_bits: int) -> np.ndarray:
    """Exact a @ w.T for int64 arrays; float64 BLAS when the result provably fits."""
    if bound_bits <= _EXACT_FLOAT_BITS:
        return np.rint(a.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    return a @ w.T


def layer_accumulate(layer: QLayer, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Accumulators b + W_x x + W_h h for a batch: x (N, I), h (N, H) -> (N, R)."""
    bits = layer.acc_width
    acc = (layer.bias << layer.bias_shift)[None, :]
    acc = acc + (_int_matmul(x, layer.w_x, bits) << layer.shift_x)
    return acc + (_int_matmul(h, layer.w_h, bits) << layer.shift_h)


def layer_step(layer: QLayer, acc: np.ndarray, state: dict, trace: dict | None = None) -> dict:
    """Gates and new state from accumulators: the element-wise half of a step.

    Parameters
    ----------
    layer : the quantized layer.
    acc : (N, R) accumulators.
    state : each of the cell's state tensors (`Cell.state`) -> (N, H) integers.
    trace : if a dict, receives acc, pre and the cell step's intermediate tensors.

    Returns
    -------
    dict
        The new state, by name.
    """
    cell = layer.spec
    gates = {name: requantize(acc[:, layer.gate_slice(name)], layer.acc_frac,
                              layer.block_fmt(name)) for name in cell.block_names}
    pre = np.concatenate([gates[name] for name in cell.block_names], axis=1)
    new_state, values = cell.int_step(layer, gates, state)
    if trace is not None:
        trace.update(acc=acc, pre=pre)
        trace.update(values)
    return new_state


def layer_activate(layer: QLayer, acc: np.ndarray, h: np.ndarray, c: np.ndarray | None = None,
                   trace: dict | None = None):
    """`layer_step` for a cell whose state is h (and c): returns (h', c' or None)."""
    state = {name: value for name, value in (("h", h), ("c", c)) if name in layer.spec.state}
    new_state = layer_step(layer, acc, state, trace)
    return new_state["h"], new_state.get("c")


def head_forward(head: QHead, h: np.ndarray) -> np.ndarray:
    """Integer Linear head: h (..., H) in head.in_fmt -> outputs in head.out_fmt."""
    flat = h.reshape(-1, h.shape[-1])
    acc = (head.bias << head.bias_shift)[None, :] + _int_matmul(flat, head.weight, head.acc_width)
    y = requantize(acc, head.acc_frac, head.out_fmt)
    return y.reshape(*h.shape[:-1], -1)


@dataclass
class DeltaStats:
    """Columns fired and MACs done by a delta run, per layer (summed over the batch)."""

    columns: list = field(default_factory=list)       # per layer: columns examined
    fired: list = field(default_factory=list)         # per layer: columns fired
    fired_per_step: list = field(default_factory=list)  # per layer: (T,) fired, all sequences
    macs_dense: list = field(default_factory=list)    # per layer: MACs of the dense model
    macs: list = field(default_factory=list)          # per layer: MACs done by fired columns

    @property
    def fired_fraction(self) -> float:
        return sum(self.fired) / max(1, sum(self.columns))

    @property
    def macs_eliminated(self) -> float:
        """Fraction of the recurrent layers' MACs that skipped columns saved."""
        return 1.0 - sum(self.macs) / max(1, sum(self.macs_dense))

    def summary(self) -> dict:
        return {"fired_fraction": self.fired_fraction, "macs_eliminated": self.macs_eliminated,
                "per_layer": [{"fired_fraction": f / max(1, c), "macs_eliminated":
                               1 - m / max(1, d)} for f, c, m, d in
                              zip(self.fired, self.columns, self.macs, self.macs_dense)]}


def _delta_update(v, v_hat, theta, first_step: bool):
    """Fire where |v - v_hat| >= max(theta, 1), or everywhere on a sequence's first step
    (which is dense: it sets the accumulators to b + W x exactly and v_hat to v).

    Returns (delta of the fired columns, new v_hat, fired mask).
    """
    delta = v - v_hat
    fired = np.ones(v.shape, dtype=bool) if first_step else np.abs(delta) >= max(int(theta), 1)
    return np.where(fired, delta, 0), np.where(fired, v, v_hat), fired


def _run_layer(layer: QLayer, v: np.ndarray, thresholds=None, stats: DeltaStats | None = None,
               steps: list | None = None, tokens: bool = False) -> np.ndarray:
    """One layer over a batch of sequences v (N, T, I); dense, or delta with (theta_x, theta_h).

    Delta: the accumulators start at the bias and persist; a column fires when its change
    since it last fired reaches the threshold, and adds W[:, j] * delta; the first step of
    a sequence fires every column. With thresholds (0, 0) the accumulators are b + W x
    exactly: bit-identical to the dense model.

    `tokens`: v is a folded embedding's one-hot input. The values are the same; `stats`
    count what the hardware visits (`hwgen.rtl.plan.LayerPlan.token_columns`): one input
    column a dense step; in a delta pass two (the previous and the new token's) on a
    sequence's first step and on every change, none when the token repeats.
    """
    n, t_len, _ = v.shape
    state = {name: np.zeros((n, layer.hidden_size), dtype=np.int64)
             for name in layer.spec.state}
    out = np.empty((n, t_len, layer.hidden_size), dtype=np.int64)
    if thresholds is not None:
        acc = np.broadcast_to(layer.bias << layer.bias_shift, (n, layer.rows)).copy()
        x_hat = np.zeros((n, layer.input_size), dtype=np.int64)
        h_hat = np.zeros_like(state["h"])
        fired_steps = np.zeros(t_len, dtype=np.int64)
        has_h = bool(layer.spec.blocks_h)
        fired_x = fired_h = 0
    for t in range(t_len):
        if thresholds is None:
            acc = layer_accumulate(layer, v[:, t], state["h"])
        else:
            dx, x_hat, fx = _delta_update(v[:, t], x_hat, thresholds[0], t == 0)
            dh, h_hat, fh = _delta_update(state["h"], h_hat, thresholds[1], t == 0)
            fired = {"fired_x": fx, "fired_h": fh}   # (N, columns) masks, for the trace
            bits = layer.acc_width + 1  # a delta spans twice its format's range
            acc = acc + (_int_matmul(dx, layer.w_x, bits) << layer.shift_x) \
                + (_int_matmul(dh, layer.w_h, bits) << layer.shift_h)
            if not has_h:  # no recurrent matrix (SRU): there are no hidden columns
                fh = np.zeros_like(fh)
            if tokens:  # a change fires the old and the new one-hot column: both tokens
                fx = np.full(n, 2) if t == 0 else fx.sum(axis=1)
            fired_steps[t] = fx.sum() + fh.sum()
            fired_x, fired_h = fired_x + int(fx.sum()), fired_h + int(fh.sum())
        rec = {} if steps is not None else None
        state = layer_step(layer, acc, state, rec)
        out[:, t] = state["h"]
        if steps is not None:
            if thresholds is not None:
                rec.update(fired)
            steps.append(rec)
    if stats is not None and thresholds is not None:
        # a fired column costs the real rows its side feeds (not the layout's zero rows)
        rows_x = layer.spec.rows_fed("x", layer.hidden_size)
        rows_h = layer.spec.rows_fed("h", layer.hidden_size)
        x_cols = 1 if tokens else layer.input_size
        cols = n * t_len * (x_cols + (layer.hidden_size if rows_h else 0))
        stats.columns.append(cols)
        stats.fired.append(int(fired_steps.sum()))
        stats.fired_per_step.append(fired_steps)
        stats.macs_dense.append(n * t_len * (x_cols * rows_x + layer.hidden_size * rows_h))
        stats.macs.append(fired_x * rows_x + fired_h * rows_h)
    return out


def run_int(qm: QModel, xq, trace: list | None = None, delta=None,
            stats: DeltaStats | None = None, layout: str | None = None) -> np.ndarray:
    """Bit-exact integer forward pass.

    Parameters
    ----------
    qm : the quantized model.
    xq : (N, T, I) integers in qm.input_fmt (see `QModel.quantize_inputs`), or (T, N, I)
        for a time-major layout; token ids (N, T, 1) for a model with an embedding.
    trace : if a list, receives for every layer a list of per-step dicts of every
        intermediate tensor (acc, pre, gates, c, h) — for debugging a mismatch; in a delta
        run also the masks of the input and hidden columns that fired (fired_x, fired_h).
    delta : None (dense) or per-layer integer thresholds [(theta_x, theta_h), ...] in LSBs
        of the layer's input and hidden formats: the delta network.
    stats : a DeltaStats that receives the delta run's counts.
    layout : "NTI", "TNI", or None for the model's own (see `hwgen.ir.data_layout`).

    Returns (N, O) integers (head on the last step), or (N, T, O) / (T, N, O) in the
    input's layout (head on every step).
    """
    lay = data_layout(qm.meta, layout)
    v = np.asarray(xq, dtype=np.int64)
    _check_shape(v, qm.input_size, lay, "integers")
    v = swap_layout(v, lay)
    if qm.embedding_design:
        v = qm.token_inputs(token_ids(v, qm.vocab_size))
    elif v.min(initial=0) < qm.input_fmt.min_int or v.max(initial=0) > qm.input_fmt.max_int:
        raise ValueError(f"Inputs fall outside the input format {qm.input_fmt}")
    if delta is not None and len(delta) != len(qm.layers):
        raise ValueError(f"delta needs one (theta_x, theta_h) per layer: {len(qm.layers)}, "
                         f"not {len(delta)}")
    for k, layer in enumerate(qm.layers):
        steps = [] if trace is not None else None
        thresholds = None if delta is None else delta[k]
        tokens = k == 0 and qm.embedding_design == "folded"
        if tokens and thresholds is not None:
            thresholds = (0, thresholds[1])   # a token change fires: no threshold to meet
        v = _run_layer(layer, v, thresholds, stats, steps, tokens)
        if trace is not None:
            trace.append(steps)
    if qm.head_mode == "last":
        return head_forward(qm.head, v[:, -1])
    return swap_layout(head_forward(qm.head, v), lay)
