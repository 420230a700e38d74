"""LSTM: four gate blocks (i, f, g, o), each fed by both sides; state h and c.

Float step (PyTorch's nn.LSTM)::

    i, f, o = sigmoid(pre); g = tanh(pre)
    c' = f * c + i * g;  h' = o * tanh(c')

Integer step (formats from the QLayer; sigmoid and tanh outputs share act_fmt, fs its
fraction)::

    c' = requantize(f*c aligned + i*g aligned, c_fmt); h' = requantize(o * tanh_c(c'), h_fmt)

Element-wise pipeline (P = PWL latency, R = product latency), a register after every
stage::

    +2      pre = requantize(acc)
    +P      i, f, g, o = PWL(pre)
    +R      f*c, i*g
    +1      f*c + i*g (aligned)
    +2      c' = requantize(...)
    +P      tanh(c')
    +R      o * tanh(c')
    +2      h' = requantize(...)
"""
from __future__ import annotations

import numpy as np

from ..fixed import align, requantize
from .base import Block, Cell, sigmoid


class LSTM(Cell):
    """The LSTM cell (torch.nn.LSTM)."""

    name = "lstm"
    blocks = (Block("i", "xh"), Block("f", "xh"), Block("g", "xh"), Block("o", "xh"))
    state = ("h", "c")
    pwls = {"sigmoid": ("sigmoid", "pre"), "tanh": ("tanh", "pre"), "tanh_c": ("tanh", "c")}
    torch_module = "torch.nn.LSTM"

    def float_step(self, xw, hw, state):
        pre = xw + hw
        i, f, g, o = np.split(pre, 4, axis=1)
        c = sigmoid(f) * state["c"] + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return {"h": h, "c": c}, pre

    def int_step(self, layer, gates, state):
        fs = layer.act_fmt.frac
        i, f, o = (layer.sigmoid.evaluate(gates[k]) for k in "ifo")
        g = layer.tanh.evaluate(gates["g"])
        fc_frac = fs + layer.c_fmt.frac
        prod_frac = max(fc_frac, 2 * fs)
        c_sum = align(f * state["c"], fc_frac, prod_frac) + align(i * g, 2 * fs, prod_frac)
        c_new = requantize(c_sum, prod_frac, layer.c_fmt)
        tc = layer.tanh_c.evaluate(c_new)
        h_new = requantize(o * tc, 2 * fs, layer.h_fmt)
        return ({"h": h_new, "c": c_new},
                dict(i=i, f=f, g=g, o=o, c=c_new, tanh_c=tc, h=h_new))

    def unsupported_options(self, rnn):
        if getattr(rnn, "proj_size", 0):
            return f"LSTM proj_size={rnn.proj_size}"
        return None

    def elementwise_latency(self, pwl_latency, product_latency=1):
        return 7 + 2 * pwl_latency + 2 * product_latency

    def elementwise(self, ops, layer, pre, state_in):
        L, PL, reg, delay = layer, ops.pwl_latency, ops.reg, ops.delay
        PR = ops.product_latency
        fs = L.act_fmt.frac
        i, f = ops.pwl("sig_i", L.sigmoid, pre[0]), ops.pwl("sig_f", L.sigmoid, pre[1])
        g, o = ops.pwl("tanh_g", L.tanh, pre[2]), ops.pwl("sig_o", L.sigmoid, pre[3])  # +P
        c = delay(state_in["c"], 2 + PL)
        fc, ig = ops.product(f, c), ops.product(i, g)                        # +PR
        fc_frac = fs + L.c_fmt.frac
        prod_frac = max(fc_frac, 2 * fs)
        total = reg((fc << (prod_frac - fc_frac)) + (ig << (prod_frac - 2 * fs)))  # +1
        c_new = ops.rq(total, prod_frac, L.c_fmt)                            # +2
        t = ops.pwl("tanh_c", L.tanh_c, c_new)                               # +P
        ot = ops.product(delay(o, 3 + PL + PR), t)                           # +PR
        rounded = reg(ops.shift_round(ot, 2 * fs - L.h_fmt.frac))            # +2
        return {"h": ops.saturate(rounded, L.h_fmt), "c": delay(c_new, PL + 1 + PR)}
