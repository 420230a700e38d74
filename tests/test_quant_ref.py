import numpy as np
import pytest

from conftest import make_model
from hwgen.fixed import QFormat
from hwgen.frontend import from_torch
from hwgen.quant import QuantConfig, QuantConfigError, quantize_model
from hwgen.ref import run_float, run_int


def rms_error(ir, x, config):
    qm = quantize_model(ir, x, config)
    y = qm.decode_outputs(run_int(qm, qm.quantize_inputs(x)))
    return float(np.sqrt(np.mean((y - run_float(ir, x)) ** 2)))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_error_shrinks_as_bits_grow(cell, rng):
    ir = from_torch(make_model(cell, layers=2, head_mode="every"))
    x = rng.uniform(-1, 1, (64, 9, 5))
    errors = [rms_error(ir, x, QuantConfig(weight_bits=b, act_bits=b)) for b in (4, 6, 8, 12)]
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 0.002


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_calibrated_beats_global_format(cell, rng):
    ir = from_torch(make_model(cell, head_mode="last"))
    x = rng.uniform(-1, 1, (64, 9, 5))
    for bits in (6, 8):
        cal = rms_error(ir, x, QuantConfig(weight_bits=bits, act_bits=bits))
        glob = rms_error(ir, x, QuantConfig(weight_bits=bits, act_bits=bits, scheme="global"))
        assert cal < 0.7 * glob


def test_integer_outputs_in_format_and_batched(rng):
    ir = from_torch(make_model("lstm", head_mode="every"))
    x = rng.uniform(-1, 1, (10, 4, 5))
    qm = quantize_model(ir, x)
    y = run_int(qm, qm.quantize_inputs(x))
    assert y.shape == (10, 4, 3) and y.dtype == np.int64
    # one sequence alone gives the same integers as in the batch
    assert np.array_equal(run_int(qm, qm.quantize_inputs(x[3:4]))[0], y[3])


def test_trace_records_every_step(rng):
    ir = from_torch(make_model("gru", layers=2))
    x = rng.uniform(-1, 1, (2, 6, 5))
    qm = quantize_model(ir, x)
    trace = []
    run_int(qm, qm.quantize_inputs(x), trace)
    assert len(trace) == 2 and len(trace[0]) == 6
    assert {"acc", "pre", "r", "z", "n", "h"} <= set(trace[1][5])


def test_saturating_inputs_stay_in_range(rng):
    ir = from_torch(make_model("lstm"))
    x = rng.uniform(-1, 1, (8, 5, 5))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=4, act_bits=4))
    fmt = qm.input_fmt
    extremes = np.where(rng.random((8, 5, 5)) < 0.5, fmt.min_int, fmt.max_int)
    y = run_int(qm, extremes)
    assert y.min() >= qm.head.out_fmt.min_int and y.max() <= qm.head.out_fmt.max_int


def test_override_keeps_path_wide(rng):
    ir = from_torch(make_model("gru"))
    x = rng.uniform(-1, 1, (16, 5, 5))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=4, overrides={"l0.wh": 16,
                                                                     "out": QFormat(12, 6)}))
    assert qm.layers[0].wh_fmt.width == 16 and qm.layers[0].wx_fmt.width == 4
    assert qm.head.out_fmt == QFormat(12, 6)


def test_memory_report_against_float32(rng):
    ir = from_torch(make_model("lstm", input_size=5, hidden=13, out=3))
    qm = quantize_model(ir, rng.uniform(-1, 1, (8, 5, 5)), QuantConfig(weight_bits=4,
                                                                       bias_bits=8))
    mem = qm.memory_bits()
    n_w = 4 * 13 * (5 + 13) + 3 * 13
    n_b = 4 * 13 + 3
    assert mem["weight_bits"] == 4 * n_w + 8 * n_b
    assert mem["weight_bits_float32"] == 32 * (n_w + n_b)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(weight_bits=1), "weight_bits must be an integer in 2..16"),
    (dict(act_bits=17), "act_bits must be an integer in 4..16"),
    (dict(scheme="perlayer"), "scheme must be one of"),
    (dict(overrides={"l3.wx": 8}), "Unknown tensor 'l3.wx'"),
    (dict(overrides={"l0.wx": 8.5}), "must be a width or a QFormat"),
])
def test_bad_config_named(kwargs, msg, rng):
    ir = from_torch(make_model("gru"))
    with pytest.raises(QuantConfigError, match=msg):
        quantize_model(ir, rng.uniform(-1, 1, (4, 3, 5)), QuantConfig(**kwargs))


def test_bad_inputs_named(rng):
    ir = from_torch(make_model("gru"))
    qm = quantize_model(ir, rng.uniform(-1, 1, (4, 3, 5)))
    with pytest.raises(ValueError, match=r"Inputs must be \(N, T, 5\)"):
        run_int(qm, np.zeros((4, 3, 6), dtype=np.int64))
    with pytest.raises(ValueError, match="outside the input format"):
        run_int(qm, np.full((1, 2, 5), 10**6))
