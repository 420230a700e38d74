"""Element-wise unit: gates and new state of one hidden element per cycle (pipelined).

Computes exactly `hwgen.ref.layer_activate` for one element. Every multiplier, every sum
of products, every PWL stage and both halves of every requantization (round; saturate)
have a register after them, for Fmax (P = PWL latency):

    LSTM                                   GRU
    +2      pre = requantize(acc)          +2      pre = requantize(acc)
    +P      i, f, g, o = PWL(pre)          +P      r, z = PWL(pre)
    +1      f*c, i*g                       +1      r * n_h
    +1      f*c + i*g (aligned)            +2      n_pre = sat(n_x + round(r * n_h))
    +2      c' = requantize(...)           +P      n = tanh(n_pre)
    +P      tanh(c')                       +1      h - n, n aligned
    +1      o * tanh(c')                   +1      z * (h - n)
    +2      h' = requantize(...)           +2      h' = requantize(n + z * (h - n))

A new element may enter every cycle; `tag` (the element's index) travels with it.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..qmodel import QLayer
from .arith import saturate, shift_round
from .pwl_unit import LATENCY as PWL_LATENCY, PWLUnit

LATENCY = {"lstm": 9 + 2 * PWL_LATENCY, "gru": 9 + 2 * PWL_LATENCY}


class ElementwiseUnit(wiring.Component):
    """Pipelined gates and state update for `layer`.

    Members
    -------
    valid_in : In(1)     acc0..acc3, h_prev, c_prev and tag are valid this cycle
    acc0..acc3 : In(signed(acc_width))   the element's accumulators, in gate-block order
    h_prev, c_prev : In  previous state (c_prev is unused for GRU)
    valid_out : Out(1)   h_new, c_new, tag_out are valid this cycle (`latency` cycles later)
    """

    def __init__(self, layer: QLayer, acc_width: int, tag_width: int = 8):
        self.layer = layer
        self.latency = LATENCY[layer.cell]
        c_width = layer.c_fmt.width if layer.c_fmt else 1
        members = {"valid_in": In(1), "valid_out": Out(1),
                   "tag": In(unsigned(tag_width)), "tag_out": Out(unsigned(tag_width)),
                   "h_prev": In(signed(layer.h_fmt.width)), "c_prev": In(signed(c_width)),
                   "h_new": Out(signed(layer.h_fmt.width)), "c_new": Out(signed(c_width))}
        for q in range(4):
            members[f"acc{q}"] = In(signed(acc_width))
        super().__init__(members)

    def elaborate(self, platform):
        L = self.layer
        m = Module()
        fs = L.act_fmt.frac
        names = iter(range(10_000))

        def reg(value, shape=None):
            """One pipeline register holding `value` (shape: `shape` or the value's)."""
            r = Signal(shape if shape is not None else value.shape(), name=f"p{next(names)}")
            m.d.sync += r.eq(value)
            return r

        def delay(value, n):
            for _ in range(n):
                value = reg(value)
            return value

        def pwl(name, table, x):
            unit = PWLUnit(table)
            m.submodules[name] = unit
            m.d.comb += unit.x.eq(x)
            return unit.y

        def rq(value, from_frac, fmt):
            """Requantize in two registered halves: round, then saturate."""
            return reg(saturate(reg(shift_round(value, from_frac - fmt.frac)), fmt),
                       signed(fmt.width))

        m.d.comb += [self.valid_out.eq(delay(self.valid_in, self.latency)),
                     self.tag_out.eq(delay(self.tag, self.latency))]
        PL = PWL_LATENCY
        pre = [rq(getattr(self, f"acc{q}"), L.acc_frac, L.pre_fmt) for q in range(4)]  # +2
        if L.cell == "lstm":
            i, f = pwl("sig_i", L.sigmoid, pre[0]), pwl("sig_f", L.sigmoid, pre[1])
            g, o = pwl("tanh_g", L.tanh, pre[2]), pwl("sig_o", L.sigmoid, pre[3])  # +P
            c = delay(self.c_prev, 2 + PL)
            fc, ig = reg(f * c), reg(i * g)                                  # +1
            fc_frac = fs + L.c_fmt.frac
            prod_frac = max(fc_frac, 2 * fs)
            total = reg((fc << (prod_frac - fc_frac)) + (ig << (prod_frac - 2 * fs)))  # +1
            c_new = rq(total, prod_frac, L.c_fmt)                            # +2
            t = pwl("tanh_c", L.tanh_c, c_new)                               # +P
            ot = reg(delay(o, 4 + PL) * t)                                   # +1
            rounded = reg(shift_round(ot, 2 * fs - L.h_fmt.frac))            # +2
            m.d.sync += [self.h_new.eq(saturate(rounded, L.h_fmt)),
                         self.c_new.eq(delay(c_new, PL + 2))]
        else:
            r, z = pwl("sig_r", L.sigmoid, pre[0]), pwl("sig_z", L.sigmoid, pre[1])  # +P
            nx, nh = delay(pre[2], PL), delay(pre[3], PL)
            rn = reg(r * nh)                                                 # +1
            n_sum = reg(delay(nx, 1) + shift_round(rn, fs))                  # +2
            n_pre = reg(saturate(n_sum, L.pre_fmt), signed(L.pre_fmt.width))
            n = pwl("tanh_n", L.tanh, n_pre)                                 # +P
            fm = max(L.h_fmt.frac, fs)
            h = delay(self.h_prev, 5 + 2 * PL)
            nm = n << (fm - fs)
            diff, nm8 = reg((h << (fm - L.h_fmt.frac)) - nm), reg(nm)        # +1
            zd = reg(delay(z, 4 + PL) * diff)                                # +1
            rounded = reg(shift_round((delay(nm8, 1) << fs) + zd,
                                      fm + fs - L.h_fmt.frac))               # +2
            m.d.sync += self.h_new.eq(saturate(rounded, L.h_fmt))
        return m
