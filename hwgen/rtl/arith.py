"""Amaranth expressions of `hwgen.fixed`'s rules: round-half-up shifts and saturation; and
the registered product every wide datapath's multiplier is built with.

The first mirror `hwgen.fixed.shift_round` / `QFormat.saturate` term for term; the unit tests
check them against the numpy definitions over edge cases.
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Mux, Signal, signed, Value

from .. import registered_product as product_module
from ..fixed import QFormat


def shift_round(value: Value, shift: int) -> Value:
    """Arithmetic shift right by `shift` with round half up; exact left shift if <= 0."""
    value = value.as_signed()
    if shift > 0:
        return (value + (1 << (shift - 1))) >> shift
    return value << (-shift)


def saturate(value: Value, fmt: QFormat) -> Value:
    """Clamp a signed value into `fmt`'s range and narrow it to `fmt.width` bits."""
    value = value.as_signed()
    clamped = Mux(value > fmt.max_int, fmt.max_int, Mux(value < fmt.min_int, fmt.min_int, value))
    return clamped.as_signed()[:fmt.width].as_signed()


def requantize(value: Value, from_frac: int, to: QFormat) -> Value:
    return saturate(shift_round(value, from_frac - to.frac), to)


def shape_of(fmt: QFormat):
    return signed(fmt.width)


def two_edge_product(m: Module, p: Signal, a: Value, b: Value, instance: bool) -> None:
    """`p` = a * b (signed), `product_module.LATENCY` edges after `a` and `b`: the operands
    and the product registered. `instance`: an instance of `product_module.MODULE` (for
    Verilog: the device's multiplier holds the registers); else the same registers in
    Amaranth (for Amaranth's simulator)."""
    assert len(p) == len(a) + len(b)
    if instance:
        m.submodules[f"{p.name}_mul"] = Instance(
            product_module.MODULE, p_A_WIDTH=len(a), p_B_WIDTH=len(b),
            i_clk=ClockSignal(), i_a=a, i_b=b, o_p=p)
        return
    a_q = Signal(signed(len(a)), name=f"{p.name}_a")
    b_q = Signal(signed(len(b)), name=f"{p.name}_b")
    m.d.sync += [a_q.eq(a), b_q.eq(b), p.eq(a_q * b_q)]
