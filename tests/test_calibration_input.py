"""Calibration data is checked before anything is computed; an all-zero tensor warns."""
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_model
from hwgen.fixed import QFormat
from hwgen.frontend import from_torch
from hwgen.quant import (CalibrationDataError, CalibrationWarning, QuantConfig,
                         QuantConfigError, quantize_model)
from hwgen.ref import run_float, run_int


def bad(x, index, value):
    x = x.copy()
    x[index] = value
    return x


X = np.random.default_rng(5).uniform(-1, 1, (6, 4, 5))
NAN = bad(X, (3, 2, 4), np.nan)
INF = bad(bad(X, (0, 1, 0), np.inf), (5, 3, 3), -np.inf)


@pytest.mark.parametrize("x,msg", [
    (NAN, "calibration data has 1 NaN value(s) (first at sequence 3, step 2, feature 4)"),
    (INF, "calibration data has 2 infinite value(s) (first at sequence 0, step 1, feature 0)"),
    (np.zeros((0, 4, 5)), "calibration data is empty: shape (0, 4, 5), want (N, T, 5)"),
    (np.zeros((6, 0, 5)), "calibration data is empty: shape (6, 0, 5), want (N, T, 5)"),
    (X[..., :4], "calibration data has 4 features per step, the model takes 5"),
    (X[0], "calibration data must be 3-D (N, T, 5), not shape (4, 5)"),
    (X[None], "calibration data must be 3-D (N, T, 5), not shape (1, 6, 4, 5)"),
    ([["a"]], "calibration data must be an array of numbers"),
])
def test_bad_calibration_data_named_before_any_computation(x, msg, monkeypatch):
    ir = from_torch(make_model("lstm"))

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibration ran on bad data")
    monkeypatch.setattr("hwgen.quant.calibrate", no_calibration)
    with pytest.raises(CalibrationDataError, match="^" + re.escape(msg)) as info:
        quantize_model(ir, x, QuantConfig())
    assert isinstance(info.value, QuantConfigError)  # the CLI's one-line error


def test_positions_are_sequence_and_step_in_a_time_major_model():
    torch.manual_seed(0)
    ir = from_torch(nn.GRU(5, 7), nn.Linear(7, 2))  # batch_first=False: (T, N, I)
    x = bad(np.zeros((4, 6, 5)), (1, 3, 2), np.nan)  # step 1 of sequence 3
    with pytest.raises(CalibrationDataError, match=re.escape("(first at sequence 3, step 1, "
                                                             "feature 2)")):
        quantize_model(ir, x)
    with pytest.raises(CalibrationDataError, match=re.escape("must be 3-D (T, N, 5)")):
        quantize_model(ir, x[0])


def test_all_zero_inputs_warn_and_get_a_sane_format(rng):
    ir = from_torch(make_model("gru"))
    with pytest.warns(CalibrationWarning) as record:
        qm = quantize_model(ir, np.zeros((8, 5, 5)))
    assert [str(w.message) for w in record] == [
        "tensor 'input' is zero on all calibration data: using the default format Q8.7 "
        "(range +/-1); calibrate on representative data"]
    assert qm.input_fmt == QFormat(8, 7)
    x = rng.uniform(-1, 1, (4, 5, 5))
    y = run_int(qm, qm.quantize_inputs(x))
    assert y.shape == (4, 3)
    # the model still computes: its outputs track the float model's
    assert np.max(np.abs(qm.decode_outputs(y) - run_float(ir, x))) < 0.1


def test_all_zero_model_warns_for_every_calibrated_tensor(rng):
    torch.manual_seed(0)
    model = nn.Sequential(nn.LSTM(3, 4, bias=False, batch_first=True), nn.Linear(4, 2,
                                                                                bias=False))
    ir = from_torch(model)
    with pytest.warns(CalibrationWarning) as record:
        qm = quantize_model(ir, np.zeros((2, 3, 3)))
    named = [re.match(r"tensor '([\w.]+)'", str(w.message)).group(1) for w in record]
    assert named == ["input", "l0.h", "l0.pre", "l0.c", "out"]
    layer = qm.layers[0]
    for fmt in (qm.input_fmt, layer.h_fmt, layer.pre_fmt, layer.c_fmt, qm.head.out_fmt):
        assert fmt == QFormat(8, 7)
    x = rng.uniform(-1, 1, (3, 4, 3))
    y = qm.decode_outputs(run_int(qm, qm.quantize_inputs(x)))
    assert y.shape == (3, 2) and np.max(np.abs(y - run_float(ir, x))) < 0.05


def test_representative_data_does_not_warn(rng):
    ir = from_torch(make_model("lstm"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        quantize_model(ir, rng.uniform(-1, 1, (8, 5, 5)))
