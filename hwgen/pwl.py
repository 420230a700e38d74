"""Piecewise-linear sigmoid and tanh: fitted in float, defined by their integer evaluation.

Both functions are evaluated on |x| only (tanh is odd, sigmoid(-x) = 1 - sigmoid(x)), so
the table covers [0, x_max) with `segments` equal segments whose width is a power of two
in input LSBs: the segment index is ``|x| >> seg_shift``, no comparators. A narrow input
format gets fewer segments, enough to cover every magnitude it holds, |min_int| included
(the most negative code has the largest magnitude). Beyond x_max the output is the limit
1. Inside segment i:

    y = c[i] + round((m[i] * dx) >> (in_frac + slope_frac - work_frac))     (slope_form "mult")
    y = c[i] + round(dx >> (in_frac + e[i] - work_frac))                      (slope_form "shift")

with ``dx = |x| - (i << seg_shift)``, at `work_frac` = out_frac + guard fraction bits; the
sign is restored (tanh: -y; sigmoid: one - y) at work precision, then the result is
rounded (round half up) and saturated to the output format. `PWL.evaluate` is that
definition; the RTL implements the same steps.

The float references (for the fit and the error statistics) are computed with Python's
`math` module, not numpy's CPU-dispatched SIMD loops, and the statistics are rounded to
`STAT_DIGITS` significant digits (`round_stat`): what reaches a written file is the same on
every machine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from .fixed import QFormat, shift_round


def _sigmoid(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)  # no overflow for large negative v
    return e / (1.0 + e)


def _vectorize(f):
    def apply(x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.array([f(v) for v in x.ravel().tolist()], dtype=np.float64).reshape(x.shape)
    return apply


# float references, element by element with `math` (the same on every machine)
FUNCTIONS = {"sigmoid": _vectorize(_sigmoid), "tanh": _vectorize(math.tanh)}
STAT_DIGITS = 6
DEFAULT_X_MAX = {"sigmoid": 8.0, "tanh": 4.0}
SLOPE_FORMS = ("mult", "shift")
GUARD_BITS = 4


def round_stat(x: float) -> float:
    """`x` rounded to `STAT_DIGITS` significant digits: a statistic fit to be written to a file.

    Float reductions may differ in the last digits between machines; rounded, they do not
    (short of a value lying within an ulp of a rounding boundary).
    """
    return float(f"{float(x):.{STAT_DIGITS}g}")


@dataclass(frozen=True)
class PWL:
    """A quantized piecewise-linear activation (see the module docstring)."""

    func: str
    in_fmt: QFormat
    out_fmt: QFormat
    seg_shift: int
    slope_form: str
    slope_frac: int           # "mult": slopes are integers with this many fraction bits
    intercepts: tuple         # ints at work_frac
    slopes: tuple             # "mult": slope ints; "shift": exponents e (slope = 2**-e)
    work_frac: int
    max_error: float = field(default=float("nan"), compare=False)
    mean_error: float = field(default=float("nan"), compare=False)

    @property
    def segments(self) -> int:
        return len(self.intercepts)

    @property
    def one(self) -> int:
        """1.0 at work precision (the limit of both functions)."""
        return 1 << self.work_frac

    def evaluate(self, x) -> np.ndarray:
        """Integer activation of integers `x` (in_fmt) -> integers in out_fmt."""
        x = np.asarray(x, dtype=np.int64)
        a = np.abs(x)
        idx = a >> self.seg_shift
        beyond = idx >= self.segments
        idx = np.minimum(idx, self.segments - 1)
        dx = a - (idx << self.seg_shift)
        c = np.asarray(self.intercepts, dtype=np.int64)[idx]
        s = np.asarray(self.slopes, dtype=np.int64)[idx]
        if self.slope_form == "mult":
            y = c + shift_round(s * dx, self.in_fmt.frac + self.slope_frac - self.work_frac)
        else:
            # per-segment shift amounts: apply each distinct exponent with the one rule
            y = c.copy()
            for e in np.unique(s):
                sel = s == e
                y[sel] += shift_round(dx[sel], self.in_fmt.frac + int(e) - self.work_frac)
        y = np.where(beyond, self.one, y)
        if self.func == "tanh":
            y = np.where(x < 0, -y, y)
        else:
            y = np.where(x < 0, self.one - y, y)
        return self.out_fmt.saturate(shift_round(y, self.work_frac - self.out_fmt.frac))

    def to_json(self) -> dict:
        return dict(func=self.func, in_fmt=self.in_fmt.to_json(), out_fmt=self.out_fmt.to_json(),
                    seg_shift=self.seg_shift, slope_form=self.slope_form,
                    slope_frac=self.slope_frac, intercepts=list(map(int, self.intercepts)),
                    slopes=list(map(int, self.slopes)), work_frac=self.work_frac,
                    max_error=self.max_error, mean_error=self.mean_error)


def fit_pwl(func: str, in_fmt: QFormat, out_fmt: QFormat, segments: int = 16,
            slope_form: str = "mult", slope_width: int = 12, x_max: float | None = None) -> PWL:
    """Fit a PWL activation and measure its error over every input code.

    Parameters
    ----------
    func : "sigmoid" or "tanh"
    in_fmt, out_fmt : formats of the pre-activation and of the result.
    segments : segments over [0, x_max); rounded down to fit the input resolution.
    slope_form : "mult" (slope integers, one multiplier) or "shift" (power-of-two slopes).
    slope_width : bits of a "mult" slope (unsigned magnitude plus sign).
    x_max : end of the table; defaults to 8 (sigmoid) or 4 (tanh).

    Returns
    -------
    PWL
        With `max_error` and `mean_error` measured by `pwl_error`.
    """
    if func not in FUNCTIONS:
        raise ValueError(f"PWL function must be one of {sorted(FUNCTIONS)}, not {func!r}")
    if slope_form not in SLOPE_FORMS:
        raise ValueError(f"slope_form must be one of {SLOPE_FORMS}, not {slope_form!r}")
    if not isinstance(segments, int) or not 1 <= segments <= 1024:
        raise ValueError(f"segments must be an integer in 1..1024, not {segments!r}")
    f = FUNCTIONS[func]
    x_max = DEFAULT_X_MAX[func] if x_max is None else float(x_max)
    # segment width: the power of two (in input LSBs) closest to x_max / segments
    seg_shift = max(0, round(math.log2(x_max / segments)) + in_fmt.frac)
    seg_w = 2.0 ** (seg_shift - in_fmt.frac)
    # never more segments than the input range needs, but every magnitude up to |min_int|
    # (the largest one) inside the table unless it is beyond x_max
    n_seg = max(1, min(segments, math.ceil(x_max / seg_w), (-in_fmt.min_int >> seg_shift) + 1))
    work_frac = out_fmt.frac + GUARD_BITS
    slope_frac = slope_width - 1 - math.ceil(math.log2(1.0 if func == "tanh" else 0.25)) - 1

    intercepts, slopes = [], []
    for i in range(n_seg):
        x0 = i * seg_w
        xs = np.linspace(x0, x0 + seg_w, 257)
        secant = float(f(x0 + seg_w) - f(x0)) / seg_w
        if slope_form == "mult":
            s_int = int(round(secant * 2.0 ** slope_frac))
            m = s_int * 2.0 ** -slope_frac
        else:
            s_int = int(round(-math.log2(max(secant, 2.0 ** -(work_frac + 2)))))
            m = 2.0 ** -s_int
        dev = f(xs) - m * (xs - x0)
        c0 = (dev.max() + dev.min()) / 2  # the minimax intercept for this slope
        intercepts.append(int(math.floor(c0 * 2.0 ** work_frac + 0.5)))
        slopes.append(s_int)
    pwl = PWL(func, in_fmt, out_fmt, seg_shift, slope_form, slope_frac, tuple(intercepts),
              tuple(slopes), work_frac)
    max_err, mean_err = pwl_error(pwl)
    return PWL(func, in_fmt, out_fmt, seg_shift, slope_form, slope_frac, tuple(intercepts),
               tuple(slopes), work_frac, max_err, mean_err)


def pwl_error(pwl: PWL) -> tuple[float, float]:
    """Max and mean |PWL(x) - f(x)| over every input code, min_int..max_int.

    Input formats wider than 20 bits use a uniform grid of 2**20 codes that includes both
    ends. Both statistics are exact reductions (max, `math.fsum`) rounded by `round_stat`.
    """
    fmt = pwl.in_fmt
    if fmt.width <= 20:
        codes = np.arange(fmt.min_int, fmt.max_int + 1, dtype=np.int64)
    else:
        codes = fmt.saturate(np.linspace(fmt.min_int, fmt.max_int, 1 << 20).astype(np.int64))
    exact = FUNCTIONS[pwl.func](fmt.to_float(codes))
    err = np.abs(pwl.out_fmt.to_float(pwl.evaluate(codes)) - exact)
    return round_stat(err.max()), round_stat(math.fsum(err.tolist()) / err.size)
