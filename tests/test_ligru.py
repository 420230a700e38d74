"""LiGRU end to end: speechbrain-named torch module, batch-norm folding, quantization with a
calibrated candidate format, delta networks, and the RTL bit for bit (Amaranth, Verilator)."""
import numpy as np
import pytest
import torch
from torch import nn

from amaranth_harness import run_accelerator
from conftest import make_model
from hwgen.cells import get_cell
from hwgen.fixed import QFormat
from hwgen.frontend import UnsupportedModelError, from_torch
from hwgen.nn import LiGRU
from hwgen.quant import QuantConfig, quantize_model, tensor_names
from hwgen.ref import DeltaStats, run_float, run_int
from hwgen.rtl.top import Accelerator

I_SIZE, HIDDEN, OUT = 5, 7, 3


def speechbrain_state_dict(sizes, hidden, norm="norm", seed=0):
    """A state_dict as speechbrain's LiGRU writes it (non-trivial batch-norm statistics,
    its dropout-mask buffers included), for layers of the given input sizes."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, i_size in enumerate(sizes):
        p = f"rnn.{k}."
        sd[p + "w.weight"] = torch.randn(2 * hidden, i_size, generator=g) * 0.5
        sd[p + "u.weight"] = torch.randn(2 * hidden, hidden, generator=g) * 0.3
        sd[p + f"{norm}.weight"] = 0.5 + torch.rand(2 * hidden, generator=g)
        sd[p + f"{norm}.bias"] = torch.randn(2 * hidden, generator=g) * 0.3
        sd[p + f"{norm}.running_mean"] = torch.randn(2 * hidden, generator=g) * 0.4
        sd[p + f"{norm}.running_var"] = 0.3 + torch.rand(2 * hidden, generator=g) * 2
        sd[p + f"{norm}.num_batches_tracked"] = torch.tensor(17)
        sd[p + "h_init"] = torch.zeros(1, hidden)
        sd[p + "drop_masks"] = torch.ones(16000, hidden)
        sd[p + "drop_mask_te"] = torch.tensor([1.0])
    return sd


def loaded(norm="norm", layers=2):
    rnn = LiGRU(I_SIZE, HIDDEN, num_layers=layers)
    sd = speechbrain_state_dict([I_SIZE] + [HIDDEN] * (layers - 1), HIDDEN, norm)
    rnn.load_state_dict(sd, strict=True)
    return rnn.eval(), sd


def numpy_ligru_layer(x, sd, p, hidden, stats=None, norm="norm"):
    """speechbrain's equations in numpy: BN over all steps (running or batch statistics)."""
    n, t_len, _ = x.shape
    w = x @ sd[p + "w.weight"].double().numpy().T
    flat = w.reshape(n * t_len, -1)
    bn = {k: sd[f"{p}{norm}.{k}"].double().numpy()
          for k in ("running_mean", "running_var", "weight", "bias")}
    mean, var = ((flat.mean(0), flat.var(0)) if stats == "batch" else
                 (bn["running_mean"], bn["running_var"]))
    w = (w - mean) / np.sqrt(var + 1e-5) * bn["weight"] + bn["bias"]
    u = sd[p + "u.weight"].double().numpy()
    h, out = np.zeros((n, hidden)), []
    for t in range(t_len):
        g = w[:, t] + h @ u.T
        z = 1 / (1 + np.exp(-g[:, hidden:]))
        h = z * h + (1 - z) * np.maximum(g[:, :hidden], 0)
        out.append(h)
    return np.stack(out, 1)


# ---------------------------------------------------------------- torch module and import
def test_state_dict_keys_are_speechbrains():
    keys = set(LiGRU(I_SIZE, HIDDEN, num_layers=2).state_dict())
    want = {f"rnn.{k}.{name}" for k in range(2) for name in
            ("w.weight", "u.weight", "norm.weight", "norm.bias", "norm.running_mean",
             "norm.running_var", "norm.num_batches_tracked", "h_init")}
    assert keys == want
    layer = LiGRU(I_SIZE, HIDDEN).rnn[0]
    assert layer.w.bias is None and layer.u.bias is None
    assert isinstance(layer.norm, nn.BatchNorm1d) and layer.norm.num_features == 2 * HIDDEN


@pytest.mark.parametrize("norm", ["norm", "bn_w"])
def test_speechbrain_state_dict_loads_and_float_path_matches(norm, rng):
    rnn, sd = loaded(norm)
    assert torch.equal(rnn.rnn[1].norm.running_var, sd[f"rnn.1.{norm}.running_var"])
    x = rng.normal(0, 1, (4, 6, I_SIZE))
    with torch.no_grad():
        y32, _ = rnn(torch.tensor(x, dtype=torch.float32))
        y64, _ = rnn.double()(torch.tensor(x))
    ref = numpy_ligru_layer(numpy_ligru_layer(x, sd, "rnn.0.", HIDDEN, norm=norm), sd,
                            "rnn.1.", HIDDEN, norm=norm)
    assert np.abs(y64.numpy() - ref).max() < 1e-12
    head = nn.Linear(HIDDEN, OUT).double()
    ir = from_torch(rnn, head, head_mode="every")
    assert ir.cell == "ligru" and not ir.layers[0].b_hh.any()
    with torch.no_grad():
        want = head(y64).numpy()
    assert np.abs(run_float(ir, x) - want).max() < 1e-12
    assert np.abs(y32.numpy() - y64.numpy()).max() < 1e-5


def test_training_mode_uses_batch_statistics(rng):
    rnn, sd = loaded(layers=1)
    x = rng.normal(0.3, 1.5, (6, 5, I_SIZE))
    rnn.train()
    with torch.no_grad():
        y, last = rnn.double()(torch.tensor(x))
    assert np.abs(y.numpy() - numpy_ligru_layer(x, sd, "rnn.0.", HIDDEN, "batch")).max() < 1e-12
    assert torch.equal(last[0], y[:, -1])
    assert not torch.equal(rnn.rnn[0].norm.running_mean, sd["rnn.0.norm.running_mean"].double())


def test_classifier_and_time_major(rng):
    model = make_model("ligru", I_SIZE, HIDDEN, OUT, layers=2, head_mode="every")
    assert model.config()["cell"] == "ligru" and isinstance(model.rnn, LiGRU)
    x = rng.normal(0, 1, (3, 4, I_SIZE))
    with torch.no_grad():
        want = model(torch.tensor(x, dtype=torch.float32)).numpy()
    assert np.abs(run_float(from_torch(model), x) - want).max() < 1e-5
    tm = LiGRU(I_SIZE, HIDDEN, num_layers=2, batch_first=False)
    tm.load_state_dict(model.rnn.state_dict())
    with torch.no_grad():
        a, _ = tm.eval()(torch.tensor(x.swapaxes(0, 1), dtype=torch.float32))
        b, _ = model.rnn(torch.tensor(x, dtype=torch.float32))
    assert a.shape == (4, 3, HIDDEN) and torch.equal(a.transpose(0, 1), b)


@pytest.mark.parametrize("kwargs,reason", [
    (dict(bidirectional=True), "bidirectional LiGRU"),
    (dict(normalization="layernorm"),
     "LiGRU normalization='layernorm' (only 'batchnorm' folds into the input weights)"),
    (dict(nonlinearity="tanh"), "LiGRU nonlinearity='tanh' (only 'relu')"),
])
def test_refused_by_name(kwargs, reason):
    rnn = LiGRU(I_SIZE, HIDDEN, **kwargs).eval()
    with torch.no_grad():
        rnn(torch.zeros(2, 3, I_SIZE))   # the options run in torch ...
    with pytest.raises(UnsupportedModelError) as err:   # ... but do not import
        from_torch(rnn, nn.Linear(HIDDEN, OUT))
    assert str(err.value) == f"Unsupported: {reason}"


def test_refused_training_mode_and_initial_state():
    rnn = LiGRU(I_SIZE, HIDDEN)
    with pytest.raises(UnsupportedModelError) as err:
        from_torch(rnn, nn.Linear(HIDDEN, OUT))
    assert str(err.value) == ("Unsupported: LiGRU in training mode (its batch norm uses batch "
                              "statistics: call model.eval() first)")
    rnn.eval().rnn[0].h_init.fill_(0.5)
    with pytest.raises(UnsupportedModelError) as err:
        from_torch(rnn, nn.Linear(HIDDEN, OUT))
    assert str(err.value) == "Unsupported: LiGRU layer 0 with a nonzero initial state h_init"
    with pytest.raises(ValueError, match="normalization must be one of"):
        LiGRU(I_SIZE, HIDDEN, normalization="none")


# ---------------------------------------------------------------- quantization, delta
def test_candidate_format_is_calibrated_and_named(rng):
    cell = get_cell("ligru")
    assert cell.block_names == ("a", "z") and cell.blocks_x == cell.blocks_h == (0, 1)
    assert "l1.cand" in tensor_names(2, "ligru")
    rnn, _ = loaded()
    ir = from_torch(rnn, nn.Linear(HIDDEN, OUT), head_mode="every")
    qm = quantize_model(ir, rng.normal(0, 1, (16, 6, I_SIZE)))
    fmts = qm.layers[0].formats()
    assert set(fmts) >= {"pre_fmt", "cand_fmt"} and qm.layers[0].block_fmt("a") == \
        qm.layers[0].extra_fmts["cand"] and qm.layers[0].block_fmt("z") == qm.layers[0].pre_fmt
    narrow = QFormat(8, 6)
    qm2 = quantize_model(ir, rng.normal(0, 1, (16, 6, I_SIZE)),
                         QuantConfig(overrides={"l0.cand": narrow}))
    trace: list = []
    run_int(qm2, qm2.quantize_inputs(rng.normal(0, 2, (8, 6, I_SIZE))), trace=trace)
    cand = np.stack([s["cand"] for s in trace[0]])
    assert qm2.layers[0].extra_fmts["cand"] == narrow
    assert cand.min() == 0 and cand.max() == narrow.max_int   # ReLU, then saturated


def test_integer_path_close_to_float(rng):
    """16-bit: each of the 8 steps adds at most an LSB of h and of the candidate and the
    sigmoid PWL's error times the largest |h - cand| (measured: ~1e-3)."""
    rnn, _ = loaded(layers=1)
    ir = from_torch(rnn, nn.Linear(HIDDEN, OUT), head_mode="every")
    x = np.clip(rng.normal(0, 1, (32, 8, I_SIZE)), -3, 3)
    qm = quantize_model(ir, x, QuantConfig(weight_bits=16, act_bits=16, pwl_segments=64))
    rec: list = []
    run_float(ir, x, rec)
    trace: list = []
    run_int(qm, qm.quantize_inputs(x), trace=trace)
    layer = qm.layers[0]
    h_int = layer.h_fmt.to_float(np.stack([s["h"] for s in trace[0]], 1))
    # per step: h rounding, candidate rounding and a sigmoid error times |h - cand|
    spread = np.abs(rec[0]["h"]).max() + layer.extra_fmts["cand"].max_value
    per_step = layer.h_fmt.lsb + layer.extra_fmts["cand"].lsb + layer.sigmoid.max_error * spread
    assert np.abs(h_int - rec[0]["h"]).max() < 8 * per_step
    assert np.abs(h_int - rec[0]["h"]).max() < 0.005


def test_delta_theta_zero_is_dense_and_counts(rng):
    model = make_model("ligru", I_SIZE, HIDDEN, OUT, layers=2, head_mode="every")
    ir = from_torch(model)
    x = np.clip(np.cumsum(rng.normal(0, 0.3, (6, 8, I_SIZE)), axis=1), -2, 2)
    qm = quantize_model(ir, x)
    xq = qm.quantize_inputs(x)
    stats = DeltaStats()
    assert np.array_equal(run_int(qm, xq, delta=[(0, 0)] * 2, stats=stats), run_int(qm, xq))
    assert stats.macs_dense[0] == 6 * 8 * (I_SIZE + HIDDEN) * 2 * HIDDEN
    loose = DeltaStats()
    run_int(qm, xq, delta=[(4, 4)] * 2, stats=loose)
    assert loose.macs_eliminated > stats.macs_eliminated


# ---------------------------------------------------------------- RTL
def rtl_model(layers, head_mode, rng, overrides=None):
    torch.manual_seed(layers)
    ir = from_torch(loaded(layers=layers)[0], nn.Linear(HIDDEN, OUT), head_mode=head_mode)
    x = np.clip(np.cumsum(rng.normal(0, 0.4, (8, 6, I_SIZE)), axis=1), -2, 2)
    qm = quantize_model(ir, x, QuantConfig(weight_bits=6, act_bits=8,
                                           overrides=overrides or {}))
    return qm, qm.quantize_inputs(x[:4])


@pytest.mark.parametrize("layers,head_mode,lanes,theta", [
    (1, "last", 1, None), (2, "every", 3, None), (1, "every", 3, 3), (2, "last", 1, 2),
])
def test_rtl_bit_exact(layers, head_mode, lanes, theta, rng):
    qm, xq = rtl_model(layers, head_mode, rng)
    delta = None if theta is None else [(theta, theta)] * layers
    got, _ = run_accelerator(Accelerator(qm, lanes, delta=delta), xq, head_mode, OUT,
                             0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))


@pytest.mark.parametrize("cand", [QFormat(8, 6), QFormat(8, 1)])  # saturates; coarse
def test_rtl_saturating_inputs_and_candidate(cand, rng):
    qm, xq = rtl_model(2, "every", rng, overrides={"l0.cand": cand, "l1.cand": cand})
    fmt = qm.input_fmt
    xq = np.where(rng.random(xq.shape) < 0.5, fmt.min_int, fmt.max_int)
    got, _ = run_accelerator(Accelerator(qm, 3), xq, "every", OUT)
    assert np.array_equal(got, run_int(qm, xq))


def test_cycle_model_matches_simulation(rng):
    from hwgen.rtl.cycles import cycle_model
    qm, xq = rtl_model(1, "last", rng)
    acc = Accelerator(qm, 2)
    per_step = cycle_model(acc.plan, I_SIZE)["per_step"]
    _, c2 = run_accelerator(acc, xq[:1, :2], "last", OUT)
    _, c3 = run_accelerator(acc, xq[:1, :3], "last", OUT)
    assert c3 - c2 == per_step


@pytest.mark.slow
def test_verilator_bit_exact(tmp_path):
    from hwgen.rtl.emit import generate
    from hwgen.sim import simulate
    from test_cocotb_designs import N_SEQ, T_LEN, assert_step_intervals, design_inputs

    rng = np.random.default_rng(31)
    ir = from_torch(make_model("ligru", I_SIZE, 13, OUT, 2, "every", seed=2))
    qm = quantize_model(ir, rng.uniform(-2, 2, (64, T_LEN, I_SIZE)),
                        QuantConfig(weight_bits=6, act_bits=8))
    design = generate(qm, tmp_path / "design", lanes=3, inputs=design_inputs(qm, rng))
    result = simulate(design, seed=3, stall_in=0.3, stall_out=0.3)
    assert result.vectors >= N_SEQ
    assert result.mismatches == 0, result.first_mismatch
    assert_step_intervals(design, result)
