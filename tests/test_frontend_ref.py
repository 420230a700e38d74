import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_model
from hwgen.frontend import UnsupportedModelError, from_torch
from hwgen.ref import run_float


def torch_out(model, x):
    with torch.no_grad():
        return model(torch.tensor(x, dtype=torch.float32)).double().numpy()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("head_mode", ["last", "every"])
def test_float_path_matches_torch(cell, layers, head_mode, rng):
    model = make_model(cell, input_size=5, hidden=13, layers=layers, head_mode=head_mode)
    x = rng.uniform(-2, 2, (16, 7, 5))  # T=7 != I=5
    assert np.max(np.abs(run_float(from_torch(model), x) - torch_out(model, x))) < 1e-5


@pytest.mark.parametrize("batch_first", [True, False])
def test_bare_rnn_with_head_in_its_own_layout(batch_first, rng):
    # hwgen takes the very tensor the torch module takes: (T, N, I) when batch_first=False
    torch.manual_seed(3)
    rnn = nn.GRU(4, 9, num_layers=2, batch_first=batch_first).eval()
    head = nn.Linear(9, 2)
    ir = from_torch(rnn, head, head_mode="every")
    x = rng.uniform(-1, 1, (3, 11, 4))  # N=3 sequences of T=11 steps, batch-major
    x_own = x if batch_first else x.transpose(1, 0, 2)
    with torch.no_grad():
        y = head(rnn(torch.tensor(x_own, dtype=torch.float32))[0]).double().numpy()
    assert np.max(np.abs(run_float(ir, x_own) - y)) < 1e-5
    # the explicit override reads batch-major data whatever the module's convention
    y_nti = y if batch_first else y.transpose(1, 0, 2)
    assert np.max(np.abs(run_float(ir, x, layout="NTI") - y_nti)) < 1e-5


def test_sequential_and_no_bias(rng):
    torch.manual_seed(0)
    model = nn.Sequential(nn.LSTM(3, 6, bias=False, batch_first=True), nn.Linear(6, 2))
    ir = from_torch(model, head_mode="last")
    assert np.all(ir.layers[0].b_ih == 0)
    assert ir.describe() == "LSTM I=3 H=6 layers=1 O=2 head=last"


@pytest.mark.parametrize("build,msg", [
    (lambda: (nn.LSTM(3, 4, bidirectional=True), nn.Linear(8, 2)), "bidirectional"),
    (lambda: (nn.LSTM(3, 4, proj_size=2), nn.Linear(2, 2)), "proj_size"),
    (lambda: (nn.GRU(3, 4, num_layers=2, dropout=0.5).train(), nn.Linear(4, 2)), "dropout"),
    (lambda: (nn.RNN(3, 4), nn.Linear(4, 2)), "Unsupported recurrent layer RNN"),
    (lambda: (nn.GRU(3, 4), nn.Conv1d(4, 2, 1)), "Unsupported head Conv1d"),
    (lambda: (nn.GRU(3, 4), nn.Linear(5, 2)), "Head expects 5 inputs"),
])
def test_refusals_are_named(build, msg):
    rnn, head = build()
    with pytest.raises(UnsupportedModelError, match=msg):
        from_torch(rnn, head)


def test_refuses_unknown_layer_in_sequential():
    model = nn.Sequential(nn.GRU(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedModelError, match="GRU, ReLU, Linear"):
        from_torch(model)


def test_refuses_unknown_module():
    with pytest.raises(UnsupportedModelError, match="Unsupported model type Conv1d"):
        from_torch(nn.Conv1d(3, 3, 1))
