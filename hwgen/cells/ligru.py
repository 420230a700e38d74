"""LiGRU (Ravanelli et al., 2018): blocks (a, z), both fed by both sides; state h.

As speechbrain defines it (`hwgen.nn.LiGRU`), with the batch norm of the input path folded
into W_x and a bias at import (the IR's ``b_ih``; ``b_hh`` is zero)::

    a = BN(W_a x) + U_a h;  z = sigmoid(BN(W_z x) + U_z h)
    h' = z * h + (1 - z) * relu(a)

Block order is speechbrain's own: ``w(x).chunk(2)`` gives [candidate, update], so rows
import unpermuted. ReLU is unbounded: block a is requantized not into ``pre_fmt`` (the
sigmoid's input, calibrated on z alone) but into the candidate's own calibrated,
saturating format (`Cell.block_formats`; `QLayer.extra_fmts["cand"]`, the tensor
``l<k>.cand`` of the quantization report, the manifest's ``cand_fmt`` and overrides).
Since requantization maps negatives to non-positives, ReLU after it is exact: a compare
and a clamp.

Integer step (fs = fraction of the activations' format, fa the candidate's)::

    z = sigmoid(pre_z); cand = max(pre_a, 0)        (pre_a in cand_fmt)
    h' = requantize((cand << fs) + z * (h - cand) aligned, h_fmt)

Element-wise pipeline (P = PWL latency, R = product latency), a register after every
stage::

    +2      pre_z = requantize(acc_z, pre_fmt); pre_a = requantize(acc_a, cand_fmt)
    +P      z = sigmoid(pre_z);  cand = relu(pre_a) (+1, then delayed)
    +1      h - cand, cand aligned
    +R      z * (h - cand)
    +2      h' = requantize(cand + z * (h - cand))
"""
from __future__ import annotations

import numpy as np

from ..fixed import align, requantize
from .base import Block, Cell, sigmoid, tensor_to_numpy


class LiGRU(Cell):
    """The light GRU cell (`hwgen.nn.LiGRU`, speechbrain's ``LiGRU`` parameter layout)."""

    name = "ligru"
    blocks = (Block("a", "xh"), Block("z", "xh"))
    state = ("h",)
    pwls = {"sigmoid": ("sigmoid", "pre")}
    calibrated = ("cand",)
    block_formats = {"a": "cand"}
    torch_module = "hwgen.nn.LiGRU"

    def float_step(self, xw, hw, state):
        pre = xw + hw
        a, z = np.split(pre, 2, axis=1)
        z = sigmoid(z)
        cand = np.maximum(a, 0.0)
        return {"h": z * state["h"] + (1 - z) * cand, "cand": cand}, pre[:, a.shape[1]:]

    def int_step(self, layer, gates, state):
        fs, cand_fmt = layer.act_fmt.frac, layer.extra_fmts["cand"]
        z = layer.sigmoid.evaluate(gates["z"])
        cand = np.maximum(gates["a"], 0)
        fm = max(layer.h_fmt.frac, cand_fmt.frac)
        hm, cm = align(state["h"], layer.h_fmt.frac, fm), align(cand, cand_fmt.frac, fm)
        h_new = requantize((cm << fs) + z * (hm - cm), fm + fs, layer.h_fmt)
        return {"h": h_new}, dict(z=z, cand=cand, h=h_new)

    # ------------------------------------------------------------ RTL
    def elementwise_latency(self, pwl_latency, product_latency=1):
        return 5 + pwl_latency + product_latency

    def elementwise(self, ops, layer, pre, state_in):
        L, PL, reg, delay = layer, ops.pwl_latency, ops.reg, ops.delay
        PR = ops.product_latency
        fs, fa = L.act_fmt.frac, L.extra_fmts["cand"].frac
        z = ops.pwl("sig_z", L.sigmoid, pre[1])                              # +P
        cand = delay(ops.relu(pre[0]), PL)
        fm = max(L.h_fmt.frac, fa)
        h = delay(state_in["h"], 2 + PL)
        cm = cand << (fm - fa)
        diff, cm1 = reg((h << (fm - L.h_fmt.frac)) - cm), reg(cm)           # +1
        zd = ops.product(delay(z, 1), diff)                                  # +PR
        rounded = reg(ops.shift_round((delay(cm1, PR) << fs) + zd,
                                      fm + fs - L.h_fmt.frac))               # +2
        return {"h": ops.saturate(rounded, L.h_fmt)}

    # ------------------------------------------------------------ torch
    def unsupported_options(self, rnn):
        if rnn.normalization != "batchnorm":
            return (f"LiGRU normalization={rnn.normalization!r} (only 'batchnorm' folds "
                    f"into the input weights)")
        if rnn.nonlinearity != "relu":
            return f"LiGRU nonlinearity={rnn.nonlinearity!r} (only 'relu')"
        if rnn.training:
            return "LiGRU in training mode (its batch norm uses batch statistics: " \
                   "call model.eval() first)"
        for k, layer in enumerate(rnn.rnn):
            if layer.norm.running_mean is None:
                return f"LiGRU layer {k} batch norm without running statistics"
            if torch_any(layer.h_init):
                return f"LiGRU layer {k} with a nonzero initial state h_init"
        return None

    def import_layers(self, rnn):
        """Fold each layer's eval-mode batch norm into W_x and b_ih (``b_hh`` is zero)."""
        from ..ir import RNNLayer

        layers = []
        for layer in rnn.rnn:
            bn = layer.norm
            scale = 1.0 / np.sqrt(tensor_to_numpy(bn.running_var) + bn.eps)
            shift = -tensor_to_numpy(bn.running_mean) * scale
            if bn.affine:
                gamma, beta = tensor_to_numpy(bn.weight), tensor_to_numpy(bn.bias)
                scale, shift = scale * gamma, shift * gamma + beta
            w_ih = tensor_to_numpy(layer.w.weight) * scale[:, None]
            w_hh = tensor_to_numpy(layer.u.weight)
            layers.append(RNNLayer(self.name, w_ih, w_hh, shift, np.zeros(w_hh.shape[0])))
        return layers


def torch_any(t) -> bool:
    """Whether a torch tensor has a nonzero element."""
    return bool(t.detach().abs().sum().item() != 0)
