"""GRU: blocks (r, z, n_x, n_h); r and z fed by both sides, n_x by x only, n_h by h only.

PyTorch's reset-after form n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) keeps the two
halves of n apart because the reset gate multiplies only the recurrent one: W_x has zero
rows for n_h and W_h zero rows for n_x. State: h.

Integer step (fs = fraction of the activations' format)::

    r, z = sigmoid(pre); n = tanh(sat(pre_nx + round(r * pre_nh)))
    h' = requantize((n << fs) + z * (h - n) aligned, h_fmt)

Element-wise pipeline (P = PWL latency, R = product latency), a register after every
stage::

    +2      pre = requantize(acc)
    +P      r, z = PWL(pre)
    +R      r * n_h
    +2      n_pre = sat(n_x + round(r * n_h))
    +P      n = tanh(n_pre)
    +1      h - n, n aligned
    +R      z * (h - n)
    +2      h' = requantize(n + z * (h - n))
"""
from __future__ import annotations

import numpy as np

from ..fixed import align, requantize, shift_round
from .base import Block, Cell, sigmoid


class GRU(Cell):
    """The GRU cell (torch.nn.GRU)."""

    name = "gru"
    blocks = (Block("r", "xh"), Block("z", "xh"), Block("nx", "x"), Block("nh", "h"))
    state = ("h",)
    pwls = {"sigmoid": ("sigmoid", "pre"), "tanh": ("tanh", "pre")}
    torch_module = "torch.nn.GRU"

    def float_step(self, xw, hw, state):
        xr, xz, xn = np.split(xw, 3, axis=1)
        hr, hz, hn = np.split(hw, 3, axis=1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n_pre = xn + r * hn
        h = (1 - z) * np.tanh(n_pre) + z * state["h"]
        return {"h": h}, np.concatenate([xr + hr, xz + hz, xn, hn, n_pre], axis=1)

    def int_step(self, layer, gates, state):
        fs = layer.act_fmt.frac
        r, z = layer.sigmoid.evaluate(gates["r"]), layer.sigmoid.evaluate(gates["z"])
        n_pre = layer.pre_fmt.saturate(gates["nx"] + shift_round(r * gates["nh"], fs))
        n = layer.tanh.evaluate(n_pre)
        fm = max(layer.h_fmt.frac, fs)
        hm, nm = align(state["h"], layer.h_fmt.frac, fm), align(n, fs, fm)
        h_new = requantize((nm << fs) + z * (hm - nm), fm + fs, layer.h_fmt)
        return {"h": h_new}, dict(r=r, z=z, n_pre=n_pre, n=n, h=h_new)

    def elementwise_latency(self, pwl_latency, product_latency=1):
        return 7 + 2 * pwl_latency + 2 * product_latency

    def elementwise(self, ops, layer, pre, state_in):
        L, PL, reg, delay = layer, ops.pwl_latency, ops.reg, ops.delay
        PR = ops.product_latency
        fs = L.act_fmt.frac
        r, z = ops.pwl("sig_r", L.sigmoid, pre[0]), ops.pwl("sig_z", L.sigmoid, pre[1])  # +P
        nx, nh = delay(pre[2], PL), delay(pre[3], PL)
        rn = ops.product(r, nh)                                              # +PR
        n_sum = reg(delay(nx, PR) + ops.shift_round(rn, fs))                 # +2
        n_pre = reg(ops.saturate(n_sum, L.pre_fmt), fmt=L.pre_fmt)
        n = ops.pwl("tanh_n", L.tanh, n_pre)                                 # +P
        fm = max(L.h_fmt.frac, fs)
        h = delay(state_in["h"], 4 + 2 * PL + PR)
        nm = n << (fm - fs)
        diff, nm8 = reg((h << (fm - L.h_fmt.frac)) - nm), reg(nm)            # +1
        zd = ops.product(delay(z, 3 + PL + PR), diff)                        # +PR
        rounded = reg(ops.shift_round((delay(nm8, PR) << fs) + zd,
                                      fm + fs - L.h_fmt.frac))               # +2
        return {"h": ops.saturate(rounded, L.h_fmt)}
