"""SRU: torch module, float and integer paths, delta, RTL (Amaranth and Verilator)."""
import numpy as np
import pytest
import torch

from amaranth_harness import run_accelerator
from conftest import make_model
from hwgen.frontend import UnsupportedModelError, from_torch
from hwgen.nn import SRU
from hwgen.quant import QuantConfig, quantize_model, tensor_names
from hwgen.ref import DeltaStats, run_float, run_int
from hwgen.rtl.cycles import cycle_model
from hwgen.rtl.plan import make_plan
from hwgen.rtl.top import Accelerator


def sru_package_forward(sd: dict, x: np.ndarray, layers: int) -> np.ndarray:
    """The `sru` package's CPU reference (2.6.0 ``cpu_forward``), written from its text:
    U = x @ weight viewed (T, N, H, k); x' = U[..., 3] if k == 4 else x * scale_x."""
    v = x.transpose(1, 0, 2)  # time-major, as the package
    for k in range(layers):
        w = sd[f"rnn_lst.{k}.weight"].numpy().astype(np.float64)
        wc = sd[f"rnn_lst.{k}.weight_c"].numpy().astype(np.float64)
        b = sd[f"rnn_lst.{k}.bias"].numpy().astype(np.float64)
        scale = float(sd[f"rnn_lst.{k}.scale_x"][0])
        t_len, n, isz = v.shape
        hsz = wc.size // 2
        kk = w.shape[1] // hsz
        u = (v @ w).reshape(t_len, n, hsz, kk)
        c = np.zeros((n, hsz))
        out = np.empty((t_len, n, hsz))
        for t in range(t_len):
            f = 1 / (1 + np.exp(-(u[t, :, :, 1] + wc[:hsz] * c + b[:hsz])))
            r = 1 / (1 + np.exp(-(u[t, :, :, 2] + wc[hsz:] * c + b[hsz:])))
            c = (c - u[t, :, :, 0]) * f + u[t, :, :, 0]
            xp = u[t, :, :, 3] if kk == 4 else v[t] * scale
            out[t] = (c - xp) * r + xp
        v = out
    return v.transpose(1, 0, 2)


def sru_state_dict(isz, hsz, layers, seed):
    """A state_dict in the package's naming (``rnn_lst.<k>.weight`` ...), random values."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for k in range(layers):
        i = isz if k == 0 else hsz
        kk = 3 if i == hsz else 4
        sd[f"rnn_lst.{k}.weight"] = torch.rand(i, hsz * kk, generator=gen) - 0.5
        sd[f"rnn_lst.{k}.weight_c"] = torch.rand(2 * hsz, generator=gen) - 0.5
        sd[f"rnn_lst.{k}.bias"] = torch.rand(2 * hsz, generator=gen) - 0.5
        sd[f"rnn_lst.{k}.scale_x"] = torch.tensor([1.25])
    return sd


@pytest.mark.parametrize("isz,hsz,layers", [(4, 6, 2), (6, 6, 2), (5, 3, 1)])
def test_loaded_state_dict_matches_package_and_float_path(isz, hsz, layers, rng):
    sd = sru_state_dict(isz, hsz, layers, seed=isz + hsz)
    rnn = SRU(isz, hsz, num_layers=layers)
    rnn.load_state_dict(sd, strict=True)
    x = rng.normal(0, 1, (3, 9, isz))
    with torch.no_grad():
        y_torch = rnn(torch.from_numpy(x).float())[0].double().numpy()
    assert np.allclose(y_torch, sru_package_forward(sd, x, layers), atol=1e-5)
    head = torch.nn.Linear(hsz, 2)
    ir = from_torch(rnn.eval(), head, head_mode="every")
    with torch.no_grad():
        y_head = head(torch.from_numpy(y_torch).float()).double().numpy()
    assert np.allclose(run_float(ir, x), y_head, atol=1e-5)
    assert ir.layers[0].w_hh.shape == (0, hsz) and set(ir.layers[0].vectors) == {"vf", "vr"}


@pytest.mark.parametrize("option,value", [("bidirectional", True), ("layer_norm", True),
                                          ("projection_size", 2), ("use_tanh", True),
                                          ("has_skip_term", False)])
def test_refuses_options_by_name(option, value):
    with pytest.raises(ValueError, match=option):
        SRU(4, 6, **{option: value})


def test_import_refuses_layer_norm_and_projection():
    rnn = SRU(4, 6).eval()
    rnn.rnn_lst[0].layer_norm = torch.nn.LayerNorm(4)
    with pytest.raises(UnsupportedModelError, match="SRU layer_norm"):
        from_torch(rnn, torch.nn.Linear(6, 2))
    rnn = SRU(4, 6).eval()
    rnn.rnn_lst[0].weight_proj = torch.nn.Parameter(torch.zeros(4, 2))
    with pytest.raises(UnsupportedModelError, match="projection_size"):
        from_torch(rnn, torch.nn.Linear(6, 2))


@pytest.mark.parametrize("isz", [4, 7])
def test_int_path_close_to_float_and_delta_zero_is_dense(isz, rng):
    hsz, bits = 7, 12
    ir = from_torch(make_model("sru", isz, hsz, 3, 2, "every", seed=isz))
    x = np.clip(np.cumsum(rng.normal(0, 0.3, (16, 8, isz)), axis=1), -2, 2)
    qm = quantize_model(ir, x, QuantConfig(weight_bits=bits, act_bits=bits))
    assert "l0.v" in tensor_names(2, "sru") and "l0.wh" not in tensor_names(2, "sru")
    xq = qm.quantize_inputs(x)
    y = run_int(qm, xq)
    # each step adds a few LSBs of the state formats; 8 LSBs of the coarsest state
    # format bounds 8 steps of 2 layers at 12 bits
    lsb = max(2.0 ** -min(ql.h_fmt.frac, ql.c_fmt.frac) for ql in qm.layers)
    err = np.abs(qm.decode_outputs(y) - run_float(ir, x)).max()
    assert err <= 8 * lsb * np.abs(ir.head.weight).sum(1).max(), err
    stats = DeltaStats()
    assert np.array_equal(run_int(qm, xq, delta=[(0, 0)] * 2, stats=stats), y)
    assert stats.columns == [16 * 8 * isz, 16 * 8 * hsz]  # input columns only


def _design(isz, hsz, layers, head_mode, lanes, rng, delta=None, bits=8):
    ir = from_torch(make_model("sru", isz, hsz, 3, layers, head_mode, seed=layers))
    x = np.clip(np.cumsum(rng.normal(0, 0.4, (4, 5, isz)), axis=1), -2, 2)
    qm = quantize_model(ir, x, QuantConfig(weight_bits=bits, act_bits=bits))
    return qm, qm.quantize_inputs(x), Accelerator(qm, lanes, delta=delta)


@pytest.mark.parametrize("isz,hsz,layers,head_mode,lanes,theta", [
    (5, 7, 1, "last", 3, None), (7, 7, 2, "every", 1, None), (5, 7, 2, "every", 3, 2),
    (7, 7, 1, "last", 1, 0), (3, 5, 2, "last", 3, 0)])
def test_rtl_bit_exact_under_stalls(isz, hsz, layers, head_mode, lanes, theta, rng):
    delta = None if theta is None else [(theta, theta)] * layers
    qm, xq, acc = _design(isz, hsz, layers, head_mode, lanes, rng, delta)
    got, _ = run_accelerator(acc, xq, head_mode, 3, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))


def test_rtl_saturating_inputs(rng):
    qm, xq, acc = _design(5, 7, 2, "every", 3, rng, bits=6)
    fmt = qm.input_fmt
    xq = np.where(rng.random(xq.shape) < 0.5, fmt.min_int, fmt.max_int)
    got, _ = run_accelerator(acc, xq, "every", 3)
    assert np.array_equal(got, run_int(qm, xq))


def test_plan_has_input_columns_only_and_cycle_model_matches(rng):
    qm, xq, acc = _design(5, 9, 2, "every", 3, rng)
    plan = acc.plan
    assert [lp.columns for lp in plan.layers] == [5, 9]
    assert plan.ew_words.shape == (18, 2)
    assert len(plan.weight_words) == (5 + 9) * 4 * 3 + 9 * 1
    model = cycle_model(plan, 5)
    _, c2 = run_accelerator(acc, xq[:1, :2], "every", 3)
    _, c3 = run_accelerator(Accelerator(qm, 3), xq[:1, :3], "every", 3)
    assert c3 - c2 == model["per_step"] + model["head"]
    assert make_plan(qm, 8).layers[0].matrix_cycles == 5 * 4 * 2


@pytest.mark.slow
def test_cocotb_verilator_bit_exact(tmp_path):
    from hwgen.rtl.emit import generate
    from hwgen.sim import simulate
    from test_cocotb_designs import (HIDDEN, I_SIZE, OUT, T_LEN, assert_step_intervals,
                                     design_inputs)

    rng = np.random.default_rng(11)
    ir = from_torch(make_model("sru", I_SIZE, HIDDEN, OUT, 2, "every", seed=2))
    qm = quantize_model(ir, rng.uniform(-2, 2, (64, T_LEN, I_SIZE)),
                        QuantConfig(weight_bits=6, act_bits=8))
    design = generate(qm, tmp_path / "design", lanes=3, inputs=design_inputs(qm, rng))
    result = simulate(design, seed=3, stall_in=0.3, stall_out=0.3)
    assert result.vectors >= 100
    assert result.mismatches == 0, result.first_mismatch
    assert_step_intervals(design, result)
