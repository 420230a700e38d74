"""Cells as data: the registry, each cell's derived quantities, and a new cell with no edits.

The toy cell at the bottom is registered by this test alone and runs through IR ->
quantize_model -> run_int (dense and delta): the Python layers need no change for a cell.
"""
import numpy as np
import pytest

from hwgen.cells import CELLS, Block, Cell, UnknownCellError, get_cell
from hwgen.cells.base import accumulator_jumps, recurrent_only_runs, sigmoid
from hwgen.fixed import align, requantize
from hwgen.frontend import from_torch
from hwgen.ir import LinearHead, ModelIR, RNNLayer
from hwgen.quant import QuantConfig, quantize_model, tensor_names
from hwgen.ref import DeltaStats, run_float, run_int
from hwgen.rtl.activate import gather_cycles
from hwgen.rtl.plan import PlanError, make_plan

from conftest import make_model


# ---------------------------------------------------------------- registry
def test_registry_holds_lstm_and_gru():
    assert list(CELLS)[:2] == ["lstm", "gru"] and {"ligru", "sru"} <= set(CELLS)
    assert get_cell("lstm") is CELLS["lstm"] and get_cell("gru").name == "gru"


@pytest.mark.parametrize("name", ["lgru", "LSTM", None])
def test_unknown_cell_is_a_named_error(name):
    with pytest.raises(UnknownCellError) as err:
        get_cell(name)
    assert str(err.value) == f"Unknown cell {name!r}; known cells: {', '.join(CELLS)}"
    assert isinstance(err.value, ValueError)


def test_unknown_cell_refused_by_the_torch_container_and_the_ir():
    from hwgen.nn import RecurrentClassifier

    with pytest.raises(UnknownCellError, match="Unknown cell 'rnn'; known cells: lstm, gru, "):
        RecurrentClassifier("rnn", 3, 4, 2)
    layer = RNNLayer("rnn", np.zeros((4, 3)), np.zeros((4, 4)), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="one cell type of"):
        ModelIR([layer], LinearHead(np.zeros((2, 4)), np.zeros(2)))


def test_ir_layers_have_the_rows_their_cell_says():
    h = 3
    layer = RNNLayer("gru", np.zeros((3 * h, 2)), np.zeros((4 * h, h)), np.zeros(3 * h),
                     np.zeros(4 * h))
    with pytest.raises(ValueError, match=r"Layer 0 \(gru, H=3\): the h side feeds 9 rows"):
        ModelIR([layer], LinearHead(np.zeros((2, h)), np.zeros(2)))


def test_a_cell_description_is_checked():
    class NoState(Cell):
        name, blocks, state = "bad", (Block("a", "xh"),), ("c",)

    with pytest.raises(ValueError, match="state must start with 'h'"):
        NoState()
    with pytest.raises(ValueError, match="sides must be"):
        Block("a", "y")


# ---------------------------------------------------------------- derived quantities
def test_lstm_derived_quantities():
    cell = get_cell("lstm")
    assert cell.block_names == ("i", "f", "g", "o")
    assert (cell.n_blocks, cell.rows(13)) == (4, 52)
    assert (cell.blocks_x, cell.blocks_h) == ((0, 1, 2, 3), (0, 1, 2, 3))
    assert cell.weight_count(5, 13) == (4 * 13 * 5, 4 * 13 * 13)
    assert (cell.rows_fed("x", 13), cell.rows_fed("h", 13)) == (52, 52)
    assert (cell.state, cell.has_cell_state) == (("h", "c"), True)
    assert set(cell.pwls) == {"sigmoid", "tanh", "tanh_c"}
    assert accumulator_jumps(cell.blocks_h) == [] and accumulator_jumps(cell.blocks_x) == []
    assert recurrent_only_runs(cell.blocks_x, cell.blocks_h) == []
    assert cell.elementwise_latency(6) == 21 and gather_cycles(cell.n_blocks) == 6
    assert cell.elementwise_latency(6, 2) == 23   # two gate products in series, each +1
    assert tensor_names(1, "lstm") == ["input", "l0.wx", "l0.wh", "l0.b", "l0.h", "l0.pre",
                                       "l0.act", "l0.c", "head.w", "head.b", "out"]


def test_gru_derived_quantities():
    cell = get_cell("gru")
    assert cell.block_names == ("r", "z", "nx", "nh")
    assert (cell.n_blocks, cell.rows(13)) == (4, 52)
    assert (cell.blocks_x, cell.blocks_h) == ((0, 1, 2), (0, 1, 3))
    assert cell.weight_count(5, 13) == (3 * 13 * 5, 3 * 13 * 13)
    assert (cell.rows_fed("x", 13), cell.rows_fed("h", 13)) == (39, 39)
    assert (cell.state, cell.has_cell_state) == (("h",), False)
    assert set(cell.pwls) == {"sigmoid", "tanh"}
    # h columns skip n_x: from their 3rd block on, one block further; n_h's bias is
    # loaded at the first recurrent column
    assert accumulator_jumps(cell.blocks_x) == [] and accumulator_jumps(cell.blocks_h) == [(2, 1)]
    assert recurrent_only_runs(cell.blocks_x, cell.blocks_h) == [(2, 3)]
    assert cell.elementwise_latency(6) == 21 and gather_cycles(cell.n_blocks) == 6
    assert cell.elementwise_latency(6, 2) == 23   # two gate products in series, each +1
    assert "l0.c" not in tensor_names(2, "gru")


def test_gru_accumulator_layout():
    cell, h = get_cell("gru"), 2
    w_ih = np.arange(6 * 3).reshape(6, 3) + 1      # r, z, n rows of PyTorch
    w_hh = -(np.arange(6 * 2).reshape(6, 2) + 1)
    w_x, w_h = cell.accumulator_weights(w_ih, w_hh, h)
    assert np.array_equal(w_x[:6], w_ih) and not w_x[6:].any()          # n_h: no x
    assert np.array_equal(w_h[:4], w_hh[:4]) and not w_h[4:6].any()     # n_x: no h
    assert np.array_equal(w_h[6:], w_hh[4:])
    b_ih, b_hh = np.arange(6.0), 10 * np.arange(6.0)
    bias = cell.accumulator_bias(b_ih, b_hh, h)
    assert np.array_equal(bias, np.concatenate([(b_ih + b_hh)[:4], b_ih[4:], b_hh[4:]]))


@pytest.mark.parametrize("cell,real", [("lstm", (4, 4)), ("gru", (3, 3))])
def test_quantized_layers_and_plan_read_the_cell(cell, real, rng):
    qm = quantize_model(from_torch(make_model(cell, input_size=5, hidden=7)),
                        rng.uniform(-1, 1, (8, 4, 5)))
    layer = qm.layers[0]
    assert layer.rows == 4 * 7
    assert layer.weight_count() == (real[0] * 7 * 5, real[1] * 7 * 7)
    plan = make_plan(qm, 3)
    lp = plan.layers[0]
    spec = get_cell(cell)
    assert (lp.blocks_x, lp.blocks_h) == (spec.blocks_x, spec.blocks_h)
    assert lp.groups_per_col == len(spec.blocks_x) * 3  # ceil(7 / 3) groups per block
    assert lp.macs == sum(layer.weight_count())
    assert (lp.c_addr is not None) == spec.has_cell_state


# ---------------------------------------------------------------- a new cell, no edits
class MinimalGated(Cell):
    """A 2-block toy cell: f = sigmoid(.), n = tanh(.), h' = f h + (1 - f) n."""

    name = "minimal_gated"
    blocks = (Block("f", "xh"), Block("n", "xh"))
    pwls = {"sigmoid": ("sigmoid", "pre"), "tanh": ("tanh", "pre")}

    def float_step(self, xw, hw, state):
        pre = xw + hw
        f, n = np.split(pre, 2, axis=1)
        f, n = sigmoid(f), np.tanh(n)
        return {"h": f * state["h"] + (1 - f) * n}, pre

    def int_step(self, layer, gates, state):
        fs = layer.act_fmt.frac
        f, n = layer.sigmoid.evaluate(gates["f"]), layer.tanh.evaluate(gates["n"])
        fm = max(layer.h_fmt.frac, fs)
        hm, nm = align(state["h"], layer.h_fmt.frac, fm), align(n, fs, fm)
        h = requantize((nm << fs) + f * (hm - nm), fm + fs, layer.h_fmt)
        return {"h": h}, dict(f=f, n=n, h=h)


@pytest.fixture
def toy_cell(monkeypatch):
    cell = MinimalGated()
    monkeypatch.setitem(CELLS, cell.name, cell)
    return cell


def _toy_model(rng, input_size=3, hidden=6, out=2):
    h2 = 2 * hidden
    layer = RNNLayer("minimal_gated", rng.uniform(-.6, .6, (h2, input_size)),
                     rng.uniform(-.6, .6, (h2, hidden)), rng.uniform(-.3, .3, h2),
                     rng.uniform(-.3, .3, h2))
    head = LinearHead(rng.uniform(-.5, .5, (out, hidden)), rng.uniform(-.2, .2, out))
    return ModelIR([layer], head, "every")


@pytest.mark.parametrize("bits", [8, 12])
def test_toy_cell_runs_through_quantization_and_the_integer_reference(toy_cell, bits, rng):
    ir = _toy_model(rng)
    x = rng.uniform(-1, 1, (32, 12, 3))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=bits, act_bits=bits))
    layer = qm.layers[0]
    assert (layer.rows, layer.weight_count()) == (12, (2 * 6 * 3, 2 * 6 * 6))
    assert layer.c_fmt is None and layer.tanh_c is None
    assert tensor_names(1, "minimal_gated")[1:7] == ["l0.wx", "l0.wh", "l0.b", "l0.h",
                                                     "l0.pre", "l0.act"]
    record, trace = [], []
    run_float(ir, x, record)
    run_int(qm, qm.quantize_inputs(x), trace=trace)
    assert list(trace[0][0]) == ["acc", "pre", "f", "n", "h"]
    h_int = layer.h_fmt.to_float(np.stack([step["h"] for step in trace[0]], axis=1))
    # one step's error sources at these formats: both activations' PWL error and the
    # pre-activation and state LSBs; twice that bounds the error carried over the sequence
    step_error = (layer.sigmoid.max_error + layer.tanh.max_error
                  + 2.0 ** -layer.pre_fmt.frac + 2.0 ** -layer.h_fmt.frac)
    err = np.abs(h_int - record[0]["h"]).max()
    assert err <= 2 * step_error, (err, step_error)


def test_toy_cell_delta_and_refusal_by_the_plan(toy_cell, rng):
    ir = _toy_model(rng)
    x = rng.uniform(-1, 1, (4, 10, 3))
    qm = quantize_model(ir, x)
    xq = qm.quantize_inputs(x)
    stats = DeltaStats()
    assert np.array_equal(run_int(qm, xq, delta=[(0, 0)], stats=stats), run_int(qm, xq))
    assert stats.macs_dense == [4 * 10 * (3 + 6) * 12]  # every column feeds both blocks
    with pytest.raises(PlanError, match="'minimal_gated' has no element-wise RTL"):
        make_plan(qm, 2)
