"""Amaranth expressions of `hwgen.fixed`'s rules: round-half-up shifts and saturation.

These mirror `hwgen.fixed.shift_round` / `QFormat.saturate` term for term; the unit tests
check them against the numpy definitions over edge cases.
"""
from __future__ import annotations

from amaranth.hdl import Mux, signed, Value

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
