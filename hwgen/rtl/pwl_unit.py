"""Combinational PWL sigmoid/tanh: the integer evaluation of `hwgen.pwl.PWL` in gates."""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..pwl import PWL
from .arith import saturate, shift_round, two_edge_product


LATENCY = 6  # registers: magnitude, lookup, slope term, intercept sum, sign restore, output


class PWLUnit(wiring.Component):
    """Evaluate one PWL table: `x` (in_fmt) -> `y` (out_fmt), `LATENCY` cycles later.

    Stage 0: sign and magnitude. Stage 1: segment index, offset, table lookup. Stage 2: slope
    term. Stage 2b: plus intercept. Stage 3: limit and sign restore. Stage 4: rounding and
    saturation. A new `x` every cycle.

    `product_instance`: the slope term's product (slope and offset registered at stage 1,
    the product at stage 2) as an instance of `hwgen.registered_product.MODULE`, whose
    registers the ECP5's multiplier holds itself (for Verilog); the same cycles.

    Members
    -------
    x : In(signed(in_fmt.width))
    y : Out(signed(out_fmt.width))
    """

    def __init__(self, pwl: PWL, product_instance: bool = False):
        self.pwl = pwl
        self.product_instance = product_instance
        super().__init__({"x": In(signed(pwl.in_fmt.width)), "y": Out(signed(pwl.out_fmt.width))})

    def elaborate(self, platform):
        p = self.pwl
        m = Module()
        n_seg = p.segments
        # stage 0: magnitude and sign
        a_now = Mux(self.x < 0, -self.x, self.x).as_unsigned()
        a, neg0 = Signal(a_now.shape()), Signal()
        m.d.sync += [a.eq(a_now), neg0.eq(self.x < 0)]
        idx_full = a >> p.seg_shift
        beyond = idx_full >= n_seg
        idx = Mux(beyond, n_seg - 1, idx_full)[:max(1, (n_seg - 1).bit_length())]
        # offset inside the segment, zero-extended to a non-negative signed value
        dx = Cat((a - (idx << p.seg_shift))[:p.seg_shift], Const(0, 1)).as_signed()
        # mult form: c + round(s*dx >> k) == (c*2^k + 2^(k-1) + s*dx) >> k exactly (c is an
        # integer), so the rounding constant rides in the intercept table and the product
        # stage holds the multiply alone (Fmax).
        k = p.in_fmt.frac + p.slope_frac - p.work_frac if p.slope_form == "mult" else 0
        fold = k > 0
        # The output's rounding constant r rides along from the intercepts: the segment
        # value is y + r, the limit and sign restore use constants offset to keep + r, and
        # the output stage is the shift and the saturation alone (Fmax).
        out_shift = p.work_frac - p.out_fmt.frac
        r = 1 << (out_shift - 1) if out_shift > 0 else 0
        intercepts = [v + r for v in p.intercepts]
        consts = [(v << k) + (1 << (k - 1)) for v in intercepts] if fold else intercepts
        c_w = max(v.bit_length() + 1 for v in consts) + 1
        c = Array(Const(v, signed(c_w)) for v in consts)[idx]
        neg1, beyond1 = Signal(), Signal()
        c1, dx1 = Signal(signed(c_w)), Signal(dx.shape())
        in_multiplier = p.slope_form == "mult" and self.product_instance
        m.d.sync += [neg1.eq(neg0), beyond1.eq(beyond), c1.eq(c)] + (
            [] if in_multiplier else [dx1.eq(dx)])
        if p.slope_form == "mult":
            sw = max(abs(s).bit_length() for s in p.slopes) + 1
            slope = Array(Const(v, signed(sw)) for v in p.slopes)[idx]
        if in_multiplier:
            # the stage 1 and 2 registers of the slope and offset, and of the product
            product = Signal(signed(sw + len(dx)), name="term")
            two_edge_product(m, product, slope, dx, instance=True)
            term = product if fold else shift_round(product, k)
        # stage 2: the slope term alone (product, or shifted offset), intercept carried
        neg1b, beyond1b = Signal(), Signal()
        c1b = Signal(signed(c_w))
        m.d.sync += [neg1b.eq(neg1), beyond1b.eq(beyond1), c1b.eq(c1)]
        if not in_multiplier:
            if p.slope_form == "mult":
                s1 = Signal(signed(sw))
                m.d.sync += s1.eq(slope)
                term_now = s1 * dx1 if fold else shift_round(s1 * dx1, k)
            else:
                idx1 = Signal(idx.shape())
                m.d.sync += idx1.eq(idx)
                terms = Array(shift_round(dx1, p.in_fmt.frac + e - p.work_frac)
                              for e in p.slopes)
                term_now = terms[idx1]
            term = Signal(term_now.shape())
            m.d.sync += term.eq(term_now)
        y_seg = (c1b + term) >> k if fold else c1b + term
        neg1, beyond1 = neg1b, beyond1b
        neg2, beyond2 = Signal(), Signal()
        y2 = Signal(y_seg.shape())
        m.d.sync += [neg2.eq(neg1), beyond2.eq(beyond1), y2.eq(y_seg)]
        y_pos = Mux(beyond2, p.one + r, y2)                  # y + r
        if p.func == "tanh":
            y_all = Mux(neg2, 2 * r - y_pos, y_pos)          # -y + r
        else:
            y_all = Mux(neg2, p.one + 2 * r - y_pos, y_pos)  # one - y + r
        y3 = Signal(y_all.shape())
        m.d.sync += y3.eq(y_all)
        # shift_round(y, out_shift) == (y + r) >> out_shift
        y_out = y3 >> out_shift if out_shift > 0 else y3 << -out_shift
        m.d.sync += self.y.eq(saturate(y_out, p.out_fmt))
        return m
