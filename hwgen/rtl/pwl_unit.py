"""Combinational PWL sigmoid/tanh: the integer evaluation of `hwgen.pwl.PWL` in gates."""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..pwl import PWL
from .arith import saturate, shift_round


class PWLUnit(wiring.Component):
    """Evaluate one PWL table: `x` (in_fmt) -> `y` (out_fmt), combinationally.

    Members
    -------
    x : In(signed(in_fmt.width))
    y : Out(signed(out_fmt.width))
    """

    def __init__(self, pwl: PWL):
        self.pwl = pwl
        super().__init__({"x": In(signed(pwl.in_fmt.width)), "y": Out(signed(pwl.out_fmt.width))})

    def elaborate(self, platform):
        p = self.pwl
        m = Module()
        n_seg = p.segments
        a = Mux(self.x < 0, -self.x, self.x).as_unsigned()
        idx_full = a >> p.seg_shift
        beyond = idx_full >= n_seg
        idx = Mux(beyond, n_seg - 1, idx_full)[:max(1, (n_seg - 1).bit_length())]
        # offset inside the segment, zero-extended to a non-negative signed value
        dx = Cat((a - (idx << p.seg_shift))[:p.seg_shift], Const(0, 1)).as_signed()
        c = Array(Const(v, signed(max(v.bit_length() + 1 for v in p.intercepts) + 1))
                  for v in p.intercepts)[idx]
        if p.slope_form == "mult":
            sw = max(abs(s).bit_length() for s in p.slopes) + 1
            s = Array(Const(v, signed(sw)) for v in p.slopes)[idx]
            y_seg = c + shift_round(s * dx, p.in_fmt.frac + p.slope_frac - p.work_frac)
        else:
            term = Array(shift_round(dx, p.in_fmt.frac + e - p.work_frac) for e in p.slopes)
            y_seg = c + term[idx]
        y_pos = Mux(beyond, p.one, y_seg)
        if p.func == "tanh":
            y_all = Mux(self.x < 0, -y_pos, y_pos)
        else:
            y_all = Mux(self.x < 0, p.one - y_pos, y_pos)
        m.d.comb += self.y.eq(saturate(shift_round(y_all, p.work_frac - p.out_fmt.frac),
                                       p.out_fmt))
        return m
