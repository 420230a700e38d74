"""Fixed-point numerics: the one definition of formats, rounding and saturation.

Every quantity in a quantized model is a two's-complement integer `q` standing for the
real value ``q * 2**-frac``, held in `width` bits. The reference model (`hwgen.ref`) and
the hardware generator (`hwgen.rtl`) both take their arithmetic from this module:

* float -> int: round half up (``floor(x * 2**frac + 0.5)``), then saturate;
* int -> narrower int: arithmetic shift right by ``s`` with round half up (add
  ``2**(s-1)``, then shift), then saturate; a negative shift is an exact left shift;
* products are exact; accumulators are as wide as the bound of their sums requires.

Round half up is used (rather than round half to even) because in hardware it is one
adder on the bits that are shifted out, with the same result for both signs' carries.
All functions are vectorized over numpy int64 arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

MAX_WIDTH = 62  # int64 with headroom for one exact product/shift


@dataclass(frozen=True, order=True)
class QFormat:
    """Signed fixed-point format Q(width, frac).

    Parameters
    ----------
    width : int
        Total bits, sign included (1 to 62).
    frac : int
        Fraction bits; may be negative (coarse steps) or exceed width (small values).
    """

    width: int
    frac: int

    def __post_init__(self):
        if not isinstance(self.width, (int, np.integer)) or not 1 <= self.width <= MAX_WIDTH:
            raise ValueError(f"Format width must be an integer in 1..{MAX_WIDTH}, "
                             f"not {self.width!r}")
        if not isinstance(self.frac, (int, np.integer)):
            raise ValueError(f"Format frac must be an integer, not {self.frac!r}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "frac", int(self.frac))

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min_value(self) -> float:
        return self.min_int * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_int * self.lsb

    def quantize(self, x) -> np.ndarray:
        """Convert real values to integers of this format (round half up, saturate)."""
        scaled = np.floor(np.asarray(x, dtype=np.float64) * 2.0 ** self.frac + 0.5)
        return np.clip(scaled, self.min_int, self.max_int).astype(np.int64)

    def to_float(self, q) -> np.ndarray:
        """Real value of integers in this format."""
        return np.asarray(q, dtype=np.float64) * self.lsb

    def saturate(self, q) -> np.ndarray:
        """Clamp integers to this format's range."""
        return np.clip(np.asarray(q, dtype=np.int64), self.min_int, self.max_int)

    def to_json(self) -> dict:
        return {"width": self.width, "frac": self.frac}

    @classmethod
    def from_json(cls, d: dict) -> "QFormat":
        return cls(d["width"], d["frac"])

    def __str__(self) -> str:
        return f"Q{self.width}.{self.frac}"


def shift_round(q, shift: int) -> np.ndarray:
    """Divide by ``2**shift`` with round half up (shift > 0); exact multiply if shift <= 0."""
    q = np.asarray(q, dtype=np.int64)
    shift = int(shift)
    if shift > 0:
        return (q + (1 << (shift - 1))) >> shift
    return q << (-shift)


def requantize(q, from_frac: int, to: QFormat) -> np.ndarray:
    """Move integers with `from_frac` fraction bits into format `to`: shift, round, saturate."""
    return to.saturate(shift_round(q, from_frac - to.frac))


def align(q, from_frac: int, to_frac: int) -> np.ndarray:
    """Exact left shift from `from_frac` to a finer `to_frac` (to_frac >= from_frac)."""
    if to_frac < from_frac:
        raise ValueError(f"align() only widens: {from_frac} -> {to_frac} would lose bits")
    return np.asarray(q, dtype=np.int64) << (to_frac - from_frac)


def bits_for(lo: int, hi: int) -> int:
    """Smallest signed width holding every integer in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def frac_for_range(max_abs: float, width: int) -> int:
    """Largest frac such that +/- max_abs fits Q(width, frac) without saturating."""
    if max_abs <= 0 or not math.isfinite(max_abs):
        return width - 1
    frac = (width - 1) - math.ceil(math.log2(max_abs))
    # max_int * lsb is slightly below 2**(width-1-frac): step down if max_abs lands there
    while max_abs > ((1 << (width - 1)) - 1) * 2.0 ** -frac:
        frac -= 1
    return frac


def frac_min_mse(values, width: int, candidates: int = 4, transform=None) -> int:
    """Choose frac for `values` by least squared quantization error (clipping allowed).

    Starts at the no-clipping frac and tries up to `candidates` finer formats, which clip
    rare large values but resolve the bulk better: the histogram decides, not the maximum.
    `transform` (e.g. np.tanh) measures the error after a function the values feed, so a
    pre-activation is judged by the activation it produces.
    """
    transform = transform or (lambda z: z)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return width - 1
    base = frac_for_range(float(np.max(np.abs(v))), width)
    if v.size > 200_000:  # a fixed subsample keeps calibration fast and deterministic
        v = v[np.linspace(0, v.size - 1, 200_000).astype(np.int64)]
    errors = []
    for frac in range(base, base + candidates):
        fmt = QFormat(width, frac)
        errors.append(np.mean((transform(fmt.to_float(fmt.quantize(v))) - transform(v)) ** 2))
    return base + int(np.argmin(errors))
