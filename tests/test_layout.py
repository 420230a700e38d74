"""Data layout: a batch_first=False model takes and returns time-major arrays by default."""
import numpy as np
import pytest
import torch
from torch import nn

from hwgen.delta import evaluate_delta
from hwgen.frontend import from_torch
from hwgen.ir import data_layout
from hwgen.quant import quantize_model
from hwgen.ref import run_float, run_int


def time_major_gru(head_mode):
    torch.manual_seed(7)
    rnn, head = nn.GRU(5, 8, num_layers=2).eval(), nn.Linear(8, 3)  # batch_first=False
    return rnn, head, from_torch(rnn, head, head_mode=head_mode)


def torch_outputs(rnn, head, x_tnd, head_mode):
    with torch.no_grad():
        y, _ = rnn(torch.tensor(x_tnd, dtype=torch.float32))
        return head(y[-1] if head_mode == "last" else y).double().numpy()


@pytest.mark.parametrize("head_mode", ["last", "every"])
def test_time_major_model_takes_the_torch_tensor(head_mode, rng):
    rnn, head, ir = time_major_gru(head_mode)
    x = rng.uniform(-1, 1, (9, 4, 5))  # (T=9, N=4, I=5), what the torch module takes
    y_torch = torch_outputs(rnn, head, x, head_mode)
    y_float = run_float(ir, x)
    assert y_float.shape == ((4, 3) if head_mode == "last" else (9, 4, 3))
    assert np.max(np.abs(y_float - y_torch)) < 1e-5
    # quantized: calibrated on the same time-major data, run on it, outputs time-major
    qm = quantize_model(ir, x)
    xq = qm.quantize_inputs(x)
    y_int = run_int(qm, xq)
    assert y_int.shape == y_float.shape
    assert np.max(np.abs(qm.decode_outputs(y_int) - y_float)) < 0.05
    # the explicit override on batch-major data gives the same model and the same integers
    x_nti = x.transpose(1, 0, 2)
    qm_nti = quantize_model(ir, x_nti, layout="NTI")
    assert [l.formats() for l in qm_nti.layers] == [l.formats() for l in qm.layers]
    assert qm_nti.head.formats() == qm.head.formats()
    y_nti = run_int(qm, xq.transpose(1, 0, 2), layout="NTI")
    assert np.array_equal(y_nti if head_mode == "last" else y_nti.transpose(1, 0, 2), y_int)
    # the delta search scores outputs in the same layout as its inputs
    point = evaluate_delta(qm, xq, lambda y: float(y.shape == y_int.shape), [(0, 0)] * 2)
    assert point.metric == 1.0


def test_layout_rule():
    assert data_layout({"batch_first": False}) == "TNI"
    assert data_layout({"batch_first": True}) == "NTI"
    assert data_layout({}) == "NTI"
    assert data_layout({"batch_first": False}, "NTI") == "NTI"
    with pytest.raises(ValueError, match=r"layout must be one of \('NTI', 'TNI'\) or None, "
                                         r"not 'NIT'"):
        data_layout({}, "NIT")


def test_wrong_shape_named_in_the_model_layout(rng):
    _, _, ir = time_major_gru("last")
    qm = quantize_model(ir, rng.uniform(-1, 1, (6, 2, 5)))
    with pytest.raises(ValueError, match=r"Inputs must be \(T, N, 5\) integers, not shape"):
        run_int(qm, np.zeros((6, 2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"Inputs must be \(N, T, 5\) floats, not shape"):
        run_float(ir, np.zeros((6, 5)), layout="NTI")
