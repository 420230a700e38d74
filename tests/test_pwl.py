import math

import numpy as np
import pytest

from conftest import make_model
from hwgen import flow
from hwgen.fixed import QFormat
from hwgen.frontend import from_torch
from hwgen.models import list_models
from hwgen.pwl import FUNCTIONS, fit_pwl, round_stat
from hwgen.quant import QuantConfig, quantize_model

# references independent of hwgen.pwl's (numpy here, math there)
NP_REF = {"sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "tanh": np.tanh}


def true_errors(p):
    """|PWL - f| over every code of the input format, min_int..max_int inclusive."""
    codes = np.arange(p.in_fmt.min_int, p.in_fmt.max_int + 1)
    return np.abs(p.out_fmt.to_float(p.evaluate(codes))
                  - NP_REF[p.func](codes * 2.0 ** -p.in_fmt.frac))


def assert_reported_is_true(p):
    err = true_errors(p)
    assert p.max_error == pytest.approx(err.max(), rel=1e-5, abs=1e-12)
    assert p.mean_error == pytest.approx(err.mean(), rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("func", ["sigmoid", "tanh"])
@pytest.mark.parametrize("form", ["mult", "shift"])
@pytest.mark.parametrize("in_fmt", [QFormat(12, 8), QFormat(8, 7), QFormat(8, 5), QFormat(6, 3)])
def test_reported_error_is_the_error_over_every_code(func, form, in_fmt):
    # Q8.7 / Q8.5 / Q6.3: |min_int| lies beyond max_value, where the old table ended
    p = fit_pwl(func, in_fmt, QFormat(10, 9), 16, form)
    assert_reported_is_true(p)
    assert p.max_error <= (0.01 if form == "mult" else 0.04)


@pytest.mark.parametrize("func,expect", [("sigmoid", 0.268941), ("tanh", -0.761594)])
def test_most_negative_code(func, expect):
    # Q8.7 holds -1.0 but not +1.0: -1.0 was beyond the table and gave the limit (0 / -1)
    p = fit_pwl(func, QFormat(8, 7), QFormat(8, 7), 16)
    assert NP_REF[func](-1.0) == pytest.approx(expect, abs=1e-6)
    assert abs(p.evaluate(-128) / 128 - expect) <= 1 / 128


def _pwls(qm):
    for k, layer in enumerate(qm.layers):
        for key in ("sigmoid", "tanh", "tanh_c"):
            if getattr(layer, key) is not None:
                yield f"l{k}.{key}", getattr(layer, key)


def test_every_pwl_of_bundled_and_test_models_reports_its_true_error(rng):
    models = [flow.quantize(flow.load_task(name), QuantConfig()) for name in list_models()]
    x = rng.uniform(-1, 1, (32, 8, 5))
    for cell in ("lstm", "gru"):
        for scale in (0.3, 1.0, 4.0):  # small to large pre-activations: narrow to wide formats
            ir = from_torch(make_model(cell, layers=2))
            models.append(quantize_model(ir, scale * x, QuantConfig(weight_bits=8, act_bits=8)))
    seen = set()
    for qm in models:
        for name, p in _pwls(qm):
            assert p.segments <= 16
            assert_reported_is_true(p)
            assert p.max_error <= 0.01, (name, p.in_fmt, p.max_error)
            seen.add((p.func, p.in_fmt))
    assert len(seen) >= 4


def test_statistics_are_rounded_and_deterministic():
    p = fit_pwl("tanh", QFormat(16, 11), QFormat(16, 14), 16)
    for stat in (p.max_error, p.mean_error):
        assert stat == float(f"{stat:.6g}")
    assert round_stat(0.0019612135485429817) == round_stat(0.001961213548542983) == 0.00196121
    # the float reference is Python's math module, element by element
    x = np.linspace(-9, 9, 101)
    assert FUNCTIONS["tanh"](x).tolist() == [math.tanh(v) for v in x.tolist()]
    assert FUNCTIONS["sigmoid"](np.array([-1000.0, 0.0]))[1] == 0.5


def test_fit_uses_no_cpu_dispatched_numpy_math(monkeypatch):
    """numpy's exp/tanh pick SIMD loops by CPU; the fit and its statistics must not use them."""
    expected = {f: fit_pwl(f, QFormat(8, 5), QFormat(8, 7), 16) for f in ("sigmoid", "tanh")}

    def forbidden(*args, **kwargs):
        raise AssertionError("numpy transcendental used by the PWL fit")
    for name in ("exp", "tanh", "expm1", "log", "log2", "power"):
        monkeypatch.setattr(np, name, forbidden)
    for f, pwl in expected.items():
        again = fit_pwl(f, QFormat(8, 5), QFormat(8, 7), 16)
        assert again == pwl and (again.max_error, again.mean_error) == (pwl.max_error,
                                                                         pwl.mean_error)


def test_aims_met_with_32_segments():
    # DESIGN.md: <= 0.005 (sigmoid) and <= 0.009 (tanh) with at most 32 segments
    sig = fit_pwl("sigmoid", QFormat(16, 11), QFormat(16, 14), 32)
    tanh = fit_pwl("tanh", QFormat(16, 11), QFormat(16, 14), 32)
    assert sig.max_error <= 0.005 and tanh.max_error <= 0.009


def test_more_segments_less_error():
    errs = [fit_pwl("tanh", QFormat(16, 11), QFormat(16, 14), n).max_error for n in (4, 8, 16)]
    assert errs[0] > errs[1] > errs[2]


def test_symmetry():
    p = fit_pwl("sigmoid", QFormat(10, 6), QFormat(10, 9), 16)
    x = np.arange(1, 500)
    one = 1 << 9
    # sigmoid(-x) = 1 - sigmoid(x) up to the final rounding of each side
    assert np.max(np.abs(p.evaluate(-x) - (one - p.evaluate(x)))) <= 1
    t = fit_pwl("tanh", QFormat(10, 6), QFormat(10, 9), 16)
    assert np.max(np.abs(t.evaluate(-x) + t.evaluate(x))) <= 1


def test_saturates_beyond_table():
    p = fit_pwl("tanh", QFormat(12, 6), QFormat(8, 7), 8)
    assert p.evaluate([2047, -2048]).tolist() == [127, -128]


@pytest.mark.parametrize("kwargs,msg", [
    (dict(func="relu"), "PWL function must be one of"),
    (dict(func="tanh", slope_form="lut"), "slope_form must be one of"),
    (dict(func="tanh", segments=0), "segments must be an integer"),
])
def test_bad_parameters(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        fit_pwl(in_fmt=QFormat(8, 4), out_fmt=QFormat(8, 7), **kwargs)
