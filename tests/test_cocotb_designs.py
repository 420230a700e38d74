"""Layer 2 of verification: the emitted Verilog under cocotb + Verilator, bit for bit.

Each design gets >= 100 random sequences (some at the input format's extremes, to exercise
saturation) and random stalls on both streams; every output is compared with hwgen.ref.
"""
import json

import numpy as np
import pytest

from conftest import make_model
from hwgen.frontend import from_torch
from hwgen.quant import QuantConfig, quantize_model
from hwgen.rtl.emit import generate
from hwgen.rtl.plan import make_plan
from hwgen.sim import simulate

I_SIZE, HIDDEN, T_LEN, OUT, N_SEQ = 5, 13, 7, 3, 100

# every cell, depth, lane count and head mode appears; pairs of them are covered
CONFIGS = [
    ("lstm", 1, 1, "last", None), ("lstm", 2, 3, "every", None), ("lstm", 1, 8, "every", None),
    ("lstm", 2, 8, "last", None), ("gru", 1, 3, "last", None), ("gru", 2, 1, "every", None),
    ("gru", 1, 8, "every", None), ("gru", 2, 3, "last", None),
    # delta networks, threshold 0 included
    ("gru", 2, 3, "last", 0), ("gru", 1, 8, "every", 4), ("lstm", 2, 3, "every", 3),
    ("lstm", 1, 1, "last", 6),
    # LiGRU and SRU (I != H: SRU's highway is its projection block), dense and delta
    ("ligru", 1, 1, "last", None), ("ligru", 2, 8, "every", None), ("ligru", 2, 3, "last", 4),
    ("sru", 1, 8, "last", None), ("sru", 2, 1, "every", None), ("sru", 2, 3, "every", 3),
]
# several element-wise units (E elements a word in the state memories; H = 13, I = 5 leave
# partial words), dense and delta
UNIT_CONFIGS = [("lstm", 2, 8, "every", None, 4), ("gru", 1, 8, "last", 3, 2),
                ("sru", 2, 4, "last", None, 2)]


def design_inputs(qm, rng):
    """Smooth random sequences (so deltas vary), 10% of them at the format's extremes."""
    x = np.clip(np.cumsum(rng.normal(0, 0.4, (N_SEQ, T_LEN, I_SIZE)), axis=1), -3, 3)
    xq = qm.quantize_inputs(x)
    fmt = qm.input_fmt
    extremes = np.where(rng.random((N_SEQ // 10, T_LEN, I_SIZE)) < 0.5, fmt.min_int,
                        fmt.max_int)
    xq[:N_SEQ // 10] = extremes
    return xq


@pytest.mark.slow
@pytest.mark.parametrize("cell,layers,lanes,head_mode,theta,units",
                         [c + (1,) for c in CONFIGS] + UNIT_CONFIGS)
def test_rtl_bit_exact(cell, layers, lanes, head_mode, theta, units, tmp_path):
    rng = np.random.default_rng(lanes * 10 + layers)
    ir = from_torch(make_model(cell, I_SIZE, HIDDEN, OUT, layers, head_mode, seed=layers))
    x_cal = rng.uniform(-2, 2, (64, T_LEN, I_SIZE))
    qm = quantize_model(ir, x_cal, QuantConfig(weight_bits=6, act_bits=8))
    delta = None if theta is None else [(theta, theta)] * layers
    design = generate(qm, tmp_path / "design", lanes=lanes, inputs=design_inputs(qm, rng),
                      delta=delta, units=units)
    assert json.loads((design / "manifest.json").read_text())["units"] == units
    result = simulate(design, seed=lanes, stall_in=0.3, stall_out=0.3)
    assert result.vectors >= N_SEQ
    assert result.mismatches == 0, result.first_mismatch
    if theta is None:
        assert_step_intervals(design, result)


def assert_step_intervals(design, result):
    """A dense design's step interval is exactly the cycle model's.

    The testbench takes the intervals between consecutive sequences' last outputs, without
    stalls: each is T `model_per_step` and the `per_sequence_overhead` (0 when the head
    runs on every step). And the intervals between consecutive step ends (last input word
    of a step accepted): within a sequence each is exactly `model_per_step`; from a
    sequence's last step to the next one's first, the head runs once more when it runs once
    per sequence, so that interval is `model_per_step` + `per_sequence_overhead`. (A design
    that overlaps steps takes a step's input while the step before runs: its step ends do
    not mark its steps.)
    """
    manifest = json.loads((design / "manifest.json").read_text())
    cycles = manifest["cycles"]
    model, overhead = cycles["model_per_step"], cycles["per_sequence_overhead"]
    assert result.model_per_step == model
    sequence = T_LEN * model + overhead
    assert result.raw["passes"]["timing"]["sequence_interval"] == {
        "mean": sequence, "min": sequence, "max": sequence}
    assert result.sequence_interval == sequence
    if manifest["overlap"]:
        return
    sequence = [model] * (T_LEN - 1)
    expected = sequence + [model + overhead, *sequence] * (result.vectors - 1)
    assert result.raw["passes"]["timing"]["step_interval"] == {
        "mean": float(np.mean(expected)), "min": model, "max": max(expected)}
    assert result.step_interval == float(np.mean(expected))


@pytest.mark.slow
@pytest.mark.parametrize("cell,layers,lanes,theta", [("gru", 2, 3, None), ("lstm", 1, 8, 2)])
def test_rtl_bit_exact_with_paired_multipliers(cell, layers, lanes, theta, tmp_path):
    """4-bit weights and 8-bit values: two lanes share each multiplier in the Verilog too,
    including pairs whose packed operand wraps (lanes 0 and 1: rows 0 and 1)."""
    from hwgen.rtl.mac_array import pairs_products
    rng = np.random.default_rng(lanes)
    ir = from_torch(make_model(cell, I_SIZE, HIDDEN, OUT, layers, "last", seed=layers))
    qm = quantize_model(ir, rng.uniform(-2, 2, (64, T_LEN, I_SIZE)),
                        QuantConfig(weight_bits=4, act_bits=8))
    layer = qm.layers[0]
    layer.w_x[:2], layer.w_h[:2], layer.w_h[2:4] = [[-3], [-8]], [[-8], [-8]], [[7], [-8]]
    delta = None if theta is None else [(theta, theta)] * layers
    design = generate(qm, tmp_path / "design", lanes=lanes, inputs=design_inputs(qm, rng),
                      delta=delta)
    memories = json.loads((design / "manifest.json").read_text())["memories"]
    assert pairs_products(memories["weights"]["lane_width"], memories["vectors"]["width"] + 1)
    result = simulate(design, seed=lanes, stall_in=0.3, stall_out=0.3)
    assert result.vectors >= N_SEQ
    assert result.mismatches == 0, result.first_mismatch
    if theta is None:
        assert_step_intervals(design, result)


@pytest.mark.slow
@pytest.mark.parametrize("cell,layers,lanes,theta,bits,head_mode", [
    ("gru", 2, 10, None, 6, "every"),    # a multiplier a lane
    ("lstm", 1, 12, 2, 4, "every"),      # two lanes a multiplier (the wrapped pairs' too)
    ("gru", 1, 16, None, 6, "last")])    # overlapped steps: the head in layer 0's words
def test_rtl_bit_exact_with_registered_products(cell, layers, lanes, theta, bits, head_mode,
                                                tmp_path):
    """Above 8 lanes the multipliers (the MAC array's and the element-wise units') are
    instances of the registered product module, whose behavioural Verilog the design folder
    holds (`hwgen.registered_product`): bit-exact under stalls, and a dense design on the
    cycle model (the MAC pipeline and each gate product a stage deeper)."""
    from hwgen import registered_product
    rng = np.random.default_rng(lanes)
    ir = from_torch(make_model(cell, I_SIZE, HIDDEN, OUT, layers, head_mode, seed=layers))
    qm = quantize_model(ir, rng.uniform(-2, 2, (64, T_LEN, I_SIZE)),
                        QuantConfig(weight_bits=bits, act_bits=8))
    delta = None if theta is None else [(theta, theta)] * layers
    design = generate(qm, tmp_path / "design", lanes=lanes, inputs=design_inputs(qm, rng),
                      delta=delta)
    manifest = json.loads((design / "manifest.json").read_text())
    plan = make_plan(qm, lanes, delta)
    assert plan.overlap == (head_mode == "last")
    assert (plan.head.acc_base == 0) == plan.overlap   # `head_shares_layer_words`
    assert manifest["interface"]["verilog"][1:] == [registered_product.FILE]
    top = (design / manifest["interface"]["verilog"][0]).read_text()
    multipliers = lanes if bits == 6 else lanes // 2
    # and each element-wise unit's gate products and PWL products (the sigmoids and tanhs
    # of the mult form)
    gates, tables = {"gru": (2, ("sigmoid", "sigmoid", "tanh")),
                     "lstm": (3, ("sigmoid", "sigmoid", "tanh", "sigmoid", "tanh_c"))}[cell]
    pwl_products = sum(getattr(ql, t).slope_form == "mult" for ql in qm.layers for t in tables)
    assert pwl_products >= 3
    unit_products = manifest["units"] * (gates * layers + pwl_products)
    assert top.count(f"{registered_product.MODULE} #(") == multipliers + unit_products
    result = simulate(design, seed=lanes, stall_in=0.3, stall_out=0.3)
    assert result.vectors >= N_SEQ
    assert result.mismatches == 0, result.first_mismatch
    if theta is None:
        assert_step_intervals(design, result)


def loaded_design(cell, layers, lanes, head_mode, theta, path, bits=6):
    """A design whose weights load through its `weights` stream (weights.bin)."""
    rng = np.random.default_rng(lanes * 10 + layers)
    ir = from_torch(make_model(cell, I_SIZE, HIDDEN, OUT, layers, head_mode, seed=layers))
    qm = quantize_model(ir, rng.uniform(-2, 2, (64, T_LEN, I_SIZE)),
                        QuantConfig(weight_bits=bits, act_bits=8))
    delta = None if theta is None else [(theta, theta)] * layers
    return generate(qm, path, lanes=lanes, inputs=design_inputs(qm, rng), delta=delta,
                    weights="load")


@pytest.mark.slow
@pytest.mark.parametrize("cell,layers,lanes,head_mode,theta,bits", [
    ("gru", 1, 3, "last", None, 6),    # overlapped steps
    ("lstm", 2, 5, "every", None, 8), ("gru", 2, 3, "last", 3, 6),
    ("lstm", 1, 5, "last", None, 4)])  # two lanes a multiplier, packed from the loaded word
def test_rtl_bit_exact_with_loaded_weights(cell, layers, lanes, head_mode, theta, bits,
                                          tmp_path):
    """The testbench sends weights.bin first, the inputs offered meanwhile (one taken early
    would be a mismatch); then bit-exact, and a dense design on the cycle model."""
    design = loaded_design(cell, layers, lanes, head_mode, theta, tmp_path / "design", bits)
    verilog = next(design.glob("*.v")).read_text()
    assert "initial begin\n    ram[" not in verilog   # no contents: SPRAM can hold it
    result = simulate(design, seed=lanes, stall_in=0.3, stall_out=0.3)
    assert result.vectors >= N_SEQ
    assert result.mismatches == 0, result.first_mismatch
    assert result.raw["weights"]["beats"] == len((design / "weights.bin").read_bytes())
    if theta is None:
        assert_step_intervals(design, result)


@pytest.mark.slow
def test_rtl_with_a_wrong_weight_byte_mismatches(tmp_path):
    """weights.bin with one weight changed (re-sealed, as if generated so): the check fails."""
    from hwgen.design_folder import seal
    design = loaded_design("gru", 1, 3, "last", None, tmp_path / "design")
    image = bytearray((design / "weights.bin").read_bytes())
    image[1] ^= 0x20      # lane 1 of layer 0's first word (6-bit lanes: bits 6..11)
    (design / "weights.bin").write_bytes(bytes(image))
    seal(design, json.loads((design / "manifest.json").read_text()))
    result = simulate(design, max_sequences=10, stall_in=0.0, stall_out=0.0)
    assert result.mismatches > 0
