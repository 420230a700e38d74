"""SRU (Lei et al., 2018): four blocks fed by x only (u, f, r, hw); state h and c.

No recurrent matrix: the matrix phase visits input columns only (`blocks_h` is empty, the
plan has no hidden columns, delta networks have input deltas only). The recurrence is
element-wise, through the per-layer vectors v_f and v_r (`Cell.vectors`)::

    f = sigmoid(W_f x + b_f + v_f * c);  r = sigmoid(W_r x + b_r + v_r * c)
    c' = f * c + (1 - f) * u  with u = W x;  h' = r * c' + (1 - r) * x'

The highway x' is the fourth block: W' x when I != H, and ``scale_x * Identity`` times x
when I == H (`import_layers` writes that matrix into the IR). The identity costs I * H MACs
a step (a quarter of the layer's; exact when scale_x is representable in the layer's
weight format), and keeps the element-wise unit reading what it reads for every cell:
accumulators, c and the vectors, no input-vector port and no scale_x format. IR layout:
``w_ih`` rows (u, f, r, hw), ``b_ih`` (0, b_f, b_r, 0), ``w_hh`` (0, H), ``b_hh`` (0,),
``vectors`` {"vf", "vr"}.

u and hw are requantized into their own calibrated format "lin" (`Cell.block_formats`), f
and r into pre_fmt.

Integer step (P = pre_fmt, C = c_fmt, V = v_fmt, U = lin, fs = act_fmt.frac,
m = max(C, U) frac)::

    f = sigmoid(P.sat(pre_f + round(v_f * c))), r likewise
    c' = requantize((u << fs) + f * (c - u) aligned to m, m + fs, C)
    h' = requantize((hw << fs) + r * (c' - hw) aligned to m, m + fs, h_fmt)

Element-wise pipeline (PL = PWL latency, R = product latency), a register after every
stage::

    +2      pre = requantize(acc)
    +R      v_f * c, v_r * c
    +2      f_pre, r_pre = sat(pre + round(v * c))
    +PL     f, r = sigmoid(...)
    +1      c - u aligned
    +R      f * (c - u)
    +2      c' = requantize(...)
    +1      c' - hw aligned
    +R      r * (c' - hw)
    +2      h' = requantize(...)
"""
from __future__ import annotations

import numpy as np

from ..fixed import align, requantize, shift_round
from .base import Block, Cell, TrainedMatrix, sigmoid, tensor_to_numpy


class SRU(Cell):
    """The SRU cell (`hwgen.nn.SRU`, the `sru` package's parameter layout)."""

    name = "sru"
    blocks = (Block("u", "x"), Block("f", "x"), Block("r", "x"), Block("hw", "x"))
    state = ("h", "c")
    pwls = {"sigmoid": ("sigmoid", "pre")}
    torch_module = "hwgen.nn_sru.SRU"
    vectors = ("vf", "vr")
    # u and the highway feed c and h linearly: their own calibrated format, "lin" (in
    # "pre" with the gates, a format judged through the gates would clip them)
    calibrated = ("lin",)
    block_formats = {"u": "lin", "hw": "lin"}

    def quantized_tensors(self):
        return tuple(t for t in super().quantized_tensors() if t != "wh")

    def float_step(self, xw, hw, state, vectors=None):
        u, xf, xr, xh = np.split(xw, 4, axis=1)
        c = state["c"]
        f_pre, r_pre = xf + vectors["vf"] * c, xr + vectors["vr"] * c
        f, r = sigmoid(f_pre), sigmoid(r_pre)
        c_new = (c - u) * f + u
        h = (c_new - xh) * r + xh
        return {"h": h, "c": c_new, "lin": np.concatenate([u, xh], axis=1)}, \
            np.concatenate([f_pre, r_pre], axis=1)

    @staticmethod
    def _shift_v(layer) -> int:
        """Right shift of v * c (frac V + C) into the pre-activation format."""
        return layer.v_fmt.frac + layer.c_fmt.frac - layer.pre_fmt.frac

    def int_step(self, layer, gates, state):
        fs, P, C, U = layer.act_fmt.frac, layer.pre_fmt, layer.c_fmt, layer.extra_fmts["lin"]
        c, sh = state["c"], self._shift_v(layer)
        f_pre = P.saturate(gates["f"] + shift_round(layer.vectors["vf"] * c, sh))
        r_pre = P.saturate(gates["r"] + shift_round(layer.vectors["vr"] * c, sh))
        f, r = layer.sigmoid.evaluate(f_pre), layer.sigmoid.evaluate(r_pre)
        m = max(C.frac, U.frac)
        um, xm = align(gates["u"], U.frac, m), align(gates["hw"], U.frac, m)
        c_new = requantize((um << fs) + f * (align(c, C.frac, m) - um), m + fs, C)
        h_new = requantize((xm << fs) + r * (align(c_new, C.frac, m) - xm), m + fs,
                           layer.h_fmt)
        return ({"h": h_new, "c": c_new},
                dict(f_pre=f_pre, r_pre=r_pre, f=f, r=r, c=c_new, h=h_new))

    # ------------------------------------------------------------ torch
    def unsupported_options(self, rnn):
        for cell in rnn.rnn_lst:
            if getattr(cell, "weight_proj", None) is not None:
                return "SRU projection_size (weight_proj)"
            if getattr(cell, "layer_norm", None) is not None:
                return "SRU layer_norm"
            if getattr(cell, "activation_type", 0) != 0:
                return "SRU activation other than identity on c (use_tanh)"
        return None

    def trained_matrices(self, rnn) -> list:
        """Per layer the weight (I, k H), its columns interleaved per unit, as `import_layers`
        lays out the IR's rows (u, f, r[, hw]); with I == H the identity highway rows are
        fixed. No recurrent matrix."""
        out = []
        for k, cell in enumerate(rnn.rnn_lst):
            isz, hsz = cell.input_size, cell.hidden_size
            blocks = 3 if isz == hsz else 4

            def rows(w, isz=isz, hsz=hsz, blocks=blocks):
                return w.reshape(isz, hsz, blocks).permute(2, 1, 0).reshape(blocks * hsz, isz)

            def unrows(r, isz=isz, hsz=hsz, blocks=blocks):
                return r.reshape(blocks, hsz, isz).permute(2, 1, 0).reshape(isz, blocks * hsz)
            fixed = (float(tensor_to_numpy(cell.scale_x).ravel()[0]) * np.eye(hsz)
                     if blocks == 3 else None)
            out.append((TrainedMatrix(f"rnn_lst.{k}.weight", rows, unrows, fixed), None))
        return out

    def import_layers(self, rnn):
        from ..ir import RNNLayer

        layers = []
        for cell in rnn.rnn_lst:
            isz, hsz = cell.input_size, cell.hidden_size
            k = 3 if isz == hsz else 4
            w = tensor_to_numpy(cell.weight).reshape(isz, hsz, k)
            highway = w[:, :, 3].T if k == 4 else \
                float(tensor_to_numpy(cell.scale_x).ravel()[0]) * np.eye(hsz)
            w_ih = np.concatenate([w[:, :, 0].T, w[:, :, 1].T, w[:, :, 2].T, highway])
            b_f, b_r = np.split(tensor_to_numpy(cell.bias), 2)
            v_f, v_r = np.split(tensor_to_numpy(cell.weight_c), 2)
            zeros = np.zeros(hsz)
            layers.append(RNNLayer(self.name, w_ih, np.zeros((0, hsz)),
                                   np.concatenate([zeros, b_f, b_r, zeros]), np.zeros(0),
                                   vectors={"vf": v_f, "vr": v_r}))
        return layers

    # ------------------------------------------------------------ RTL
    def elementwise_latency(self, pwl_latency, product_latency=1):
        return 10 + pwl_latency + 3 * product_latency

    def elementwise(self, ops, layer, pre, state_in):
        L, PL, reg, delay = layer, ops.pwl_latency, ops.reg, ops.delay
        PR = ops.product_latency
        fs, P, C, U = L.act_fmt.frac, L.pre_fmt, L.c_fmt, L.extra_fmts["lin"]
        sh, m = self._shift_v(L), max(C.frac, U.frac)
        c = delay(state_in["c"], 2)
        gates = []
        for name, q in (("f", 1), ("r", 2)):
            vc = ops.product(delay(state_in["v" + name], 2), c)              # +PR
            total = reg(delay(pre[q], PR) + ops.shift_round(vc, sh))         # +2
            gate_pre = reg(ops.saturate(total, P), fmt=P)
            gates.append(ops.pwl(f"sig_{name}", L.sigmoid, gate_pre))        # +PL
        f, r = gates
        u = delay(pre[0], 2 + PL + PR)
        um = reg(u << (m - U.frac))
        diff = reg((delay(c, 2 + PL + PR) << (m - C.frac)) - (u << (m - U.frac)))  # +1
        fd = ops.product(delay(f, 1), diff)                                  # +PR
        c_new = ops.rq((delay(um, PR) << fs) + fd, m + fs, C)                # +2
        xh = delay(pre[3], 5 + PL + 2 * PR)
        xm = reg(xh << (m - U.frac))
        diff2 = reg((c_new << (m - C.frac)) - (xh << (m - U.frac)))          # +1
        rd = ops.product(delay(r, 4 + PR), diff2)                            # +PR
        rounded = reg(ops.shift_round((delay(xm, PR) << fs) + rd, m + fs - L.h_fmt.frac))
        return {"h": ops.saturate(rounded, L.h_fmt), "c": delay(c_new, 2 + PR)}  # +2
