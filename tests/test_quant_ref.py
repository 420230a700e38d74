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


def _rnd(q: int, s: int) -> int:
    """Round half up by s bits (exact left shift if s <= 0), on Python ints."""
    return (q + (1 << (s - 1))) >> s if s > 0 else q << -s


def _sat(q: int, fmt) -> int:
    return min(max(q, fmt.min_int), fmt.max_int)


def _act(pwl, q: int) -> int:
    return int(pwl.evaluate(q))


def hand_int_model(qm, x):
    """The integer model of docs/numerics.md, one scalar at a time in Python ints."""
    out = []
    for seq in x.tolist():
        v = seq
        for ly in qm.layers:
            hsz, fs = ly.hidden_size, ly.act_fmt.frac
            h, c, hs = [0] * hsz, [0] * hsz, []
            wx, wh, bias = ly.w_x.tolist(), ly.w_h.tolist(), ly.bias.tolist()
            for xt in v:
                pre = []
                for r in range(ly.rows):
                    acc = (bias[r] << ly.bias_shift) \
                        + (sum(w * a for w, a in zip(wx[r], xt)) << ly.shift_x) \
                        + (sum(w * a for w, a in zip(wh[r], h)) << ly.shift_h)
                    pre.append(_sat(_rnd(acc, ly.acc_frac - ly.pre_fmt.frac), ly.pre_fmt))
                gate = [pre[k * hsz:(k + 1) * hsz] for k in range(4)]
                for e in range(hsz):
                    if ly.cell == "lstm":
                        i, f, o = (_act(ly.sigmoid, gate[k][e]) for k in (0, 1, 3))
                        g = _act(ly.tanh, gate[2][e])
                        fc = fs + ly.c_fmt.frac
                        pf = max(fc, 2 * fs)
                        c[e] = _sat(_rnd((f * c[e] << (pf - fc)) + (i * g << (pf - 2 * fs)),
                                         pf - ly.c_fmt.frac), ly.c_fmt)
                        h[e] = _sat(_rnd(o * _act(ly.tanh_c, c[e]),
                                         2 * fs - ly.h_fmt.frac), ly.h_fmt)
                    else:
                        r, z = _act(ly.sigmoid, gate[0][e]), _act(ly.sigmoid, gate[1][e])
                        n = _act(ly.tanh, _sat(gate[2][e] + _rnd(r * gate[3][e], fs), ly.pre_fmt))
                        fm = max(ly.h_fmt.frac, fs)
                        hm, nm = h[e] << (fm - ly.h_fmt.frac), n << (fm - fs)
                        h[e] = _sat(_rnd((nm << fs) + z * (hm - nm), fm + fs - ly.h_fmt.frac),
                                    ly.h_fmt)
                hs.append(list(h))
            v = hs
        hd = qm.head
        w, b = hd.weight.tolist(), hd.bias.tolist()
        steps = v[-1:] if qm.head_mode == "last" else v
        y = [[_sat(_rnd((b[o] << hd.bias_shift) + sum(a * q for a, q in zip(w[o], ht)),
                        hd.acc_frac - hd.out_fmt.frac), hd.out_fmt) for o in range(len(b))]
             for ht in steps]
        out.append(y[0] if qm.head_mode == "last" else y)
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("cell,bits", [("lstm", 4), ("gru", 4), ("lstm", 8), ("gru", 12)])
def test_saturating_inputs_match_a_hand_computation(cell, bits, rng):
    # extreme input codes drive every accumulator and format to its edges; the vectorized
    # (BLAS) reference must still equal the scalar integer model exactly
    ir = from_torch(make_model(cell, layers=2, head_mode="every"))
    x = rng.uniform(-1, 1, (8, 5, 5))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=bits, act_bits=max(bits, 4)))
    fmt = qm.input_fmt
    extremes = np.where(rng.random((4, 5, 5)) < 0.5, fmt.min_int, fmt.max_int)
    xq = np.concatenate([extremes, qm.quantize_inputs(x[:4])])
    assert np.array_equal(run_int(qm, xq), hand_int_model(qm, xq))


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
