"""Element-wise unit: gates and new state of one hidden element per cycle (pipelined).

Computes exactly `hwgen.ref.layer_activate` for one element, in `LATENCY` stages:

    stage 1  pre-activations: requantize the four accumulators
    stage 2  gate activations (PWL)              LSTM: i, f, g, o       GRU: r, z
    stage 3  LSTM: c' = f*c + i*g                GRU: n_pre = n_x + r * n_h
    stage 4  LSTM: tanh(c')                      GRU: n = tanh(n_pre)
    stage 5  LSTM: h' = o * tanh(c')             GRU: h' = n + z * (h - n)

A new element may enter every cycle; `tag` (the element's index) travels with it.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..qmodel import QLayer
from .arith import requantize, saturate, shift_round
from .pwl_unit import PWLUnit

LATENCY = 5


class ElementwiseUnit(wiring.Component):
    """Pipelined gates and state update for `layer`.

    Members
    -------
    valid_in : In(1)     acc0..acc3, h_prev, c_prev and tag are valid this cycle
    acc0..acc3 : In(signed(acc_width))   the element's accumulators, in gate-block order
    h_prev, c_prev : In  previous state (c_prev is unused for GRU)
    valid_out : Out(1)   h_new, c_new, tag_out are valid this cycle (LATENCY cycles later)
    """

    def __init__(self, layer: QLayer, acc_width: int, tag_width: int = 8):
        self.layer = layer
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

        def stage(name, like, value):
            """A pipeline register: `like` is a signed width or a signal to copy the shape of."""
            reg = Signal(signed(like), name=name) if isinstance(like, int) else \
                Signal.like(like, name=name)
            m.d.sync += reg.eq(value)
            return reg

        valid = [self.valid_in]
        tags = [self.tag]
        for s in range(LATENCY):
            valid.append(stage(f"valid{s + 1}", Signal(), valid[-1]))
            tags.append(stage(f"tag{s + 1}", self.tag, tags[-1]))
        m.d.comb += [self.valid_out.eq(valid[-1]), self.tag_out.eq(tags[-1])]

        # stage 1: pre-activations; carry the previous state along
        pre = [stage(f"pre{q}", L.pre_fmt.width,
                     requantize(getattr(self, f"acc{q}"), L.acc_frac, L.pre_fmt))
               for q in range(4)]
        h1 = stage("h1", self.h_prev, self.h_prev)
        c1 = stage("c1", self.c_prev, self.c_prev)

        def pwl(name, table, x):
            unit = PWLUnit(table)
            m.submodules[name] = unit
            m.d.comb += unit.x.eq(x)
            return unit.y

        aw = L.act_fmt.width
        if L.cell == "lstm":
            # stage 2: i, f, g, o
            i2 = stage("i2", aw, pwl("sig_i", L.sigmoid, pre[0]))
            f2 = stage("f2", aw, pwl("sig_f", L.sigmoid, pre[1]))
            g2 = stage("g2", aw, pwl("tanh_g", L.tanh, pre[2]))
            o2 = stage("o2", aw, pwl("sig_o", L.sigmoid, pre[3]))
            c2 = stage("c2", c1, c1)
            # stage 3: c' = f*c + i*g, aligned to the finer product
            fc_frac = fs + L.c_fmt.frac
            prod_frac = max(fc_frac, 2 * fs)
            total = ((f2 * c2) << (prod_frac - fc_frac)) + ((i2 * g2) << (prod_frac - 2 * fs))
            c3 = stage("c3", L.c_fmt.width, requantize(total, prod_frac, L.c_fmt))
            o3 = stage("o3", o2, o2)
            # stage 4: tanh(c')
            t4 = stage("t4", aw, pwl("tanh_c", L.tanh_c, c3))
            o4 = stage("o4", o3, o3)
            c4 = stage("c4", c3, c3)
            # stage 5: h' = o * tanh(c')
            m.d.sync += [self.h_new.eq(requantize(o4 * t4, 2 * fs, L.h_fmt)),
                         self.c_new.eq(c4)]
        else:
            # stage 2: r, z; carry the n parts and h
            r2 = stage("r2", aw, pwl("sig_r", L.sigmoid, pre[0]))
            z2 = stage("z2", aw, pwl("sig_z", L.sigmoid, pre[1]))
            nx2, nh2 = stage("nx2", pre[2], pre[2]), stage("nh2", pre[3], pre[3])
            h2 = stage("h2", h1, h1)
            # stage 3: n_pre = n_x + r * n_h
            n3 = stage("n3", L.pre_fmt.width,
                       saturate(nx2 + shift_round(r2 * nh2, fs), L.pre_fmt))
            z3, h3 = stage("z3", z2, z2), stage("h3", h2, h2)
            # stage 4: n = tanh(n_pre)
            n4 = stage("n4", aw, pwl("tanh_n", L.tanh, n3))
            z4, h4 = stage("z4", z3, z3), stage("h4", h3, h3)
            # stage 5: h' = n + z * (h - n), at the finer of the two formats
            fm = max(L.h_fmt.frac, fs)
            hm = h4 << (fm - L.h_fmt.frac)
            nm = n4 << (fm - fs)
            m.d.sync += self.h_new.eq(requantize((nm << fs) + z4 * (hm - nm), fm + fs,
                                                 L.h_fmt))
        return m
