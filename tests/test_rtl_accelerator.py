"""The whole accelerator in Amaranth's simulator: bit-exact outputs under random stalls."""
import numpy as np
import pytest

from amaranth_harness import run_accelerator, step_cycles
from conftest import make_model
from hwgen.frontend import from_torch
from hwgen.quant import QuantConfig, quantize_model
from hwgen.ref import run_int
from hwgen.rtl.plan import make_plan
from hwgen.rtl.top import Accelerator


def quantized(cell, layers, head_mode, bits=8, n=4, t_len=4, rng=None):
    """A small random quantized model and its inputs."""
    ir = from_torch(make_model(cell, input_size=5, hidden=7, out=3, layers=layers,
                               head_mode=head_mode))
    x = rng.uniform(-1.5, 1.5, (n, t_len, 5))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=bits, act_bits=bits))
    return qm, x


def build(cell, layers, head_mode, lanes, bits=8, n=4, t_len=4, rng=None):
    """A small random model, its inputs, and its accelerator with `lanes` MAC lanes."""
    qm, x = quantized(cell, layers, head_mode, bits, n, t_len, rng)
    acc = Accelerator(qm, lanes)
    assert acc.plan.lanes == acc.plan.weight_words.shape[1] == lanes
    return qm, qm.quantize_inputs(x), acc


@pytest.mark.parametrize("cell,layers,head_mode,lanes", [
    ("lstm", 1, "last", 3), ("gru", 1, "every", 1), ("gru", 2, "last", 8),
    ("lstm", 2, "every", 2),
])
def test_bit_exact_under_stalls(cell, layers, head_mode, lanes, rng):
    qm, xq, acc = build(cell, layers, head_mode, lanes, rng=rng)
    got, _ = run_accelerator(acc, xq, head_mode, 3, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq))


def test_saturating_inputs(rng):
    qm, xq, acc = build("gru", 1, "every", 4, bits=6, rng=rng)
    fmt = qm.input_fmt
    xq = np.where(rng.random(xq.shape) < 0.5, fmt.min_int, fmt.max_int)
    got, _ = run_accelerator(acc, xq, "every", 3)
    assert np.array_equal(got, run_int(qm, xq))


def test_plan_rejects_bad_lanes(rng):
    qm, _ = quantized("gru", 1, "last", rng=rng)
    with pytest.raises(ValueError, match="lanes must be an integer in 1..128, not 0"):
        make_plan(qm, 0)
    with pytest.raises(ValueError, match="lanes must be an integer in 1..128, not 129"):
        make_plan(qm, 129)


@pytest.mark.parametrize("cell,hidden,lanes,units", [
    ("gru", 67, 64, None), ("lstm", 9, 128, None),
    ("gru", 40, 32, 4),    # picking banks (P/E = 8) of 4 lane groups
    ("ligru", 11, 12, None), ("sru", 10, 16, None)])
def test_wide_arrays_bit_exact_with_the_modelled_cycles(cell, hidden, lanes, units, rng):
    """64 lanes over 67 rows (a last group of 3), 128 lanes over 9 (one partial group), 32
    lanes whose activate engine picks its lanes; every cell above 8 lanes, where the
    element-wise units' products register their operands too (`PipelineOps.product`)."""
    from hwgen.rtl.cycles import cycle_model
    ir = from_torch(make_model(cell, input_size=5, hidden=hidden, out=3))
    x = rng.uniform(-1.5, 1.5, (2, 3, 5))
    qm = quantize_model(ir, x)
    xq = qm.quantize_inputs(x)
    acc = Accelerator(qm, lanes, units=units)
    assert units is None or acc.plan.units == units
    got, _ = run_accelerator(acc, xq, "last", 3, 0.2, 0.2)
    assert np.array_equal(got, run_int(qm, xq))
    assert step_cycles(acc, xq[:1], "last", 3) == cycle_model(acc.plan, 5)["per_step"]


@pytest.mark.parametrize("cell,layers,head_mode,lanes,theta", [
    ("gru", 1, "every", 3, 0), ("gru", 2, "last", 4, 3), ("lstm", 1, "every", 2, 5),
    ("lstm", 2, "last", 8, 2),
])
def test_delta_bit_exact_under_stalls(cell, layers, head_mode, lanes, theta, rng):
    ir = from_torch(make_model(cell, input_size=5, hidden=7, out=3, layers=layers,
                               head_mode=head_mode))
    x = np.clip(np.cumsum(rng.normal(0, 0.2, (4, 6, 5)), axis=1), -2, 2)
    qm = quantize_model(ir, x)
    xq = qm.quantize_inputs(x)
    delta = [(theta, theta)] * layers
    got, _ = run_accelerator(Accelerator(qm, lanes, delta=delta), xq, head_mode, 3,
                             0.3, 0.3, seed=theta)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))


@pytest.mark.parametrize("cell,layers,head_mode,lanes", [
    ("gru", 1, "last", 3), ("lstm", 2, "every", 4), ("gru", 2, "every", 1)])
def test_cycle_model_matches_simulation(cell, layers, head_mode, lanes, rng):
    from hwgen.rtl.cycles import cycle_model
    ir = from_torch(make_model(cell, input_size=5, hidden=9, out=3, layers=layers,
                               head_mode=head_mode))
    x = rng.uniform(-1, 1, (1, 3, 5))
    qm = quantize_model(ir, x)
    xq = qm.quantize_inputs(x)
    acc = Accelerator(qm, lanes)
    model = cycle_model(acc.plan, 5)
    per_step = model["per_step"] + (model["head"] if head_mode == "every" else 0)
    assert step_cycles(acc, xq, head_mode, 3) == per_step


@pytest.mark.parametrize("cell,layers,head_mode,lanes,units,delta", [
    ("lstm", 2, "every", 8, 4, None), ("gru", 1, "last", 4, 2, 2), ("sru", 2, "last", 6, 2, None),
    ("ligru", 1, "every", 8, 8, 3)])
def test_element_wise_units_bit_exact_with_the_modelled_cycles(cell, layers, head_mode, lanes,
                                                               units, delta, rng):
    """E units take E elements a cycle; the state memories hold E elements a word (H = 7 and
    I = 5 leave partial words)."""
    from hwgen.rtl.cycles import cycle_model
    ir = from_torch(make_model(cell, input_size=5, hidden=7, out=3, layers=layers,
                               head_mode=head_mode))
    x = np.clip(np.cumsum(rng.normal(0, 0.3, (3, 4, 5)), axis=1), -2, 2)
    qm = quantize_model(ir, x)
    xq = qm.quantize_inputs(x)
    thetas = None if delta is None else [(delta, delta)] * layers
    acc = Accelerator(qm, lanes, delta=thetas, units=units)
    assert acc.plan.units == units
    got, _ = run_accelerator(acc, xq, head_mode, 3, 0.3, 0.3, seed=units)
    assert np.array_equal(got, run_int(qm, xq, delta=thetas))
    if delta is None:
        model = cycle_model(acc.plan, 5)
        per_step = model["per_step"] + (model["head"] if head_mode == "every" else 0)
        assert step_cycles(acc, xq[:1], head_mode, 3) == per_step
        # ACTIVATE issues E elements a cycle: fewer cycles than one unit
        assert model["per_step"] < cycle_model(make_plan(qm, lanes, units=1), 5)["per_step"]


def test_units_must_divide_the_lanes(rng):
    qm, _ = quantized("gru", 1, "last", rng=rng)
    for units in (3, 0, 16):
        with pytest.raises(ValueError, match=f"element-wise units must be a power of two "
                                             f"dividing the 8 lanes, not {units}"):
            make_plan(qm, 8, units=units)


@pytest.mark.parametrize("cell,layers,lanes,theta", [("gru", 1, 3, None), ("lstm", 2, 8, 2)])
def test_narrow_weights_on_shared_multipliers_bit_exact(cell, layers, lanes, theta, rng):
    """4-bit weights and 8-bit values: two lanes a multiplier; saturated inputs, dense and
    delta, under stalls."""
    from hwgen.rtl.mac_array import pairs_products
    ir = from_torch(make_model(cell, input_size=5, hidden=7, out=3, layers=layers))
    x = np.clip(np.cumsum(rng.normal(0, 0.5, (4, 6, 5)), axis=1), -2, 2)
    qm = quantize_model(ir, x, QuantConfig(weight_bits=4, act_bits=8))
    layer = qm.layers[0]   # rows 0, 1 are lanes 0, 1: a pair; its packed operand wraps
    layer.w_x[:2], layer.w_h[:2] = [[-3], [-8]], [[-8], [-8]]
    layer.w_h[2:4] = [[7], [-8]]
    xq = qm.quantize_inputs(x)
    xq[:2] = np.where(rng.random(xq[:2].shape) < 0.5, qm.input_fmt.min_int, qm.input_fmt.max_int)
    delta = None if theta is None else [(theta, theta)] * layers
    acc = Accelerator(qm, lanes, delta=delta)
    assert pairs_products(acc.plan.weight_width, acc.plan.value_width + 1)
    got, _ = run_accelerator(acc, xq, "last", 3, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))


def test_narrow_weights_on_a_wide_array_bit_exact_with_the_modelled_cycles(rng):
    """4-bit weights at 128 lanes over two row groups (the second partial), as the widest
    design of the throughput table: lane pairs share a multiplier within copy groups of 8
    lanes, pairs whose packed operand wraps included; in the modelled cycles."""
    from hwgen.rtl.cycles import cycle_model
    from hwgen.rtl.mac_array import pairs_products
    ir = from_torch(make_model("gru", input_size=5, hidden=45, out=3))
    x = rng.uniform(-1.5, 1.5, (2, 3, 5))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=4, act_bits=8))
    # pairs whose packed operand wraps (w_hi = -8, w_lo < 0), in both row groups and in
    # two copy groups: rows 0, 1 (r, both sides), 128, 129 (n_x: x only), 136, 137 (n_h:
    # h only; lanes 8, 9)
    layer = qm.layers[0]
    layer.w_x[:2, 0], layer.w_h[:2, 0] = [-3, -8], [-8, -8]
    layer.w_x[128:130, 0], layer.w_h[136:138, 0] = [-8, -8], [-1, -8]
    xq = qm.quantize_inputs(x)
    acc = Accelerator(qm, 128)
    assert pairs_products(acc.plan.weight_width, acc.plan.value_width + 1)
    got, _ = run_accelerator(acc, xq, "last", 3, 0.2, 0.2)
    assert np.array_equal(got, run_int(qm, xq))
    assert step_cycles(acc, xq[:1], "last", 3) == cycle_model(acc.plan, 5)["per_step"]


@pytest.mark.parametrize("inputs,hidden,lanes", [(16, 64, 32), (40, 96, 64), (13, 40, 128)])
def test_overlapping_design_takes_the_fewest_units_that_hide_activate(inputs, hidden, lanes,
                                                                     rng):
    """Where steps overlap, ACTIVATE hides under the next step's input columns: more units
    than that would not shorten a step. The default is the fewest that do (a step as short
    as with P/8 units), and half of them would not."""
    from hwgen.rtl.cycles import cycle_model
    from hwgen.rtl.plan import default_units
    ir = from_torch(make_model("gru", input_size=inputs, hidden=hidden, out=3))
    qm = quantize_model(ir, rng.uniform(-1, 1, (2, 3, inputs)))
    plan, wide = make_plan(qm, lanes), make_plan(qm, lanes, units=default_units(lanes))
    assert plan.overlap and plan.units < wide.units
    per_step = cycle_model(plan, inputs)["per_step"]
    assert per_step == cycle_model(wide, inputs)["per_step"]
    if plan.units > 1:
        half = make_plan(qm, lanes, units=plan.units // 2)
        assert cycle_model(half, inputs)["per_step"] > per_step
