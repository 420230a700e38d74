"""Element-wise unit: one hidden element's gates and new state from its accumulators.

A small sequential machine (one operation a cycle) shares a PWL unit per table and two
multipliers; it computes exactly `hwgen.ref.layer_activate` for one element.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..qmodel import QLayer
from .arith import requantize, saturate, shift_round
from .pwl_unit import PWLUnit


class ElementwiseUnit(wiring.Component):
    """Gates and state update of one element of `layer`.

    Members
    -------
    start : In(1)       pulse: `acc`, `h_prev`, `c_prev` are valid
    acc : In(4 x signed(acc_width))  the element's accumulators, in gate-block order
    h_prev, c_prev : In               previous state (c_prev unused for GRU)
    done : Out(1)       pulse: `h_new`, `c_new` are valid (they hold until the next start)
    """

    def __init__(self, layer: QLayer, acc_width: int):
        self.layer = layer
        c_width = layer.c_fmt.width if layer.c_fmt else 1
        members = {"start": In(1), "done": Out(1),
                   "h_prev": In(signed(layer.h_fmt.width)), "c_prev": In(signed(c_width)),
                   "h_new": Out(signed(layer.h_fmt.width)), "c_new": Out(signed(c_width))}
        for q in range(4):
            members[f"acc{q}"] = In(signed(acc_width))
        super().__init__(members)

    def elaborate(self, platform):
        L = self.layer
        m = Module()
        fs = L.act_fmt.frac
        m.submodules.sig = sig = PWLUnit(L.sigmoid)
        m.submodules.tanh = tanh = PWLUnit(L.tanh)
        pre = [Signal(signed(L.pre_fmt.width), name=f"pre{q}") for q in range(4)]
        act = [Signal(signed(L.act_fmt.width), name=f"act{q}") for q in range(4)]
        accs = [getattr(self, f"acc{q}") for q in range(4)]
        m.d.sync += self.done.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pre[q].eq(requantize(accs[q], L.acc_frac, L.pre_fmt))
                                 for q in range(4)]
                    m.next = "G0"
            if L.cell == "lstm":
                m.submodules.tanh_c = tanh_c = PWLUnit(L.tanh_c)
                # gates i, f, g, o: sigmoid for 0, 1, 3 and tanh for 2
                for q, nxt in ((0, "G1"), (1, "G2"), (2, "G3"), (3, "C")):
                    with m.State(f"G{q}"):
                        unit = tanh if q == 2 else sig
                        m.d.comb += unit.x.eq(pre[q])
                        m.d.sync += act[q].eq(unit.y)
                        m.next = nxt
                with m.State("C"):
                    fc_frac = fs + L.c_fmt.frac
                    prod_frac = max(fc_frac, 2 * fs)
                    total = ((act[1] * self.c_prev) << (prod_frac - fc_frac)) + \
                        ((act[0] * act[2]) << (prod_frac - 2 * fs))
                    m.d.sync += self.c_new.eq(requantize(total, prod_frac, L.c_fmt))
                    m.next = "TC"
                with m.State("TC"):
                    m.d.comb += tanh_c.x.eq(self.c_new)
                    m.d.sync += act[2].eq(tanh_c.y)  # g is no longer needed
                    m.next = "H"
                with m.State("H"):
                    m.d.sync += [self.h_new.eq(requantize(act[3] * act[2], 2 * fs, L.h_fmt)),
                                 self.done.eq(1)]
                    m.next = "IDLE"
            else:
                # r, z = sigmoid(pre0, pre1); pre2 = n_x part, pre3 = n_h part
                for q, nxt in ((0, "G1"), (1, "N")):
                    with m.State(f"G{q}"):
                        m.d.comb += sig.x.eq(pre[q])
                        m.d.sync += act[q].eq(sig.y)
                        m.next = nxt
                with m.State("N"):
                    n_pre = saturate(pre[2] + shift_round(act[0] * pre[3], fs), L.pre_fmt)
                    m.d.sync += pre[2].eq(n_pre)
                    m.next = "T"
                with m.State("T"):
                    m.d.comb += tanh.x.eq(pre[2])
                    m.d.sync += act[2].eq(tanh.y)
                    m.next = "H"
                with m.State("H"):
                    fm = max(L.h_fmt.frac, fs)
                    hm = self.h_prev << (fm - L.h_fmt.frac)
                    nm = act[2] << (fm - fs)
                    total = (nm << fs) + act[1] * (hm - nm)
                    m.d.sync += [self.h_new.eq(requantize(total, fm + fs, L.h_fmt)),
                                 self.done.eq(1)]
                    m.next = "IDLE"
        return m
