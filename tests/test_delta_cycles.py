"""The delta cycle model of the MAC array (`cycles.delta_step_cycles`): the MATRIX pass walked
from the columns that fire equals the accelerator in Amaranth's simulator, step by step."""
import numpy as np
import pytest

from amaranth_harness import run_accelerator
from conftest import make_model
from hwgen.frontend import from_torch
from hwgen.quant import quantize_model
from hwgen.ref import run_int
from hwgen.rtl.cycles import (delta_fired_columns, delta_matrix_cycles, delta_step_cycles,
                              matrix_overhead)
from hwgen.rtl.top import Accelerator


@pytest.mark.parametrize("cols,gpc,lanes", [(296, 12, 64), (10, 1, 8), (7, 3, 3)])
def test_a_pass_where_every_column_fires_is_the_dense_model(cols, gpc, lanes):
    assert (delta_matrix_cycles(np.ones(cols, bool), gpc, lanes)
            == cols * gpc + matrix_overhead(lanes))


@pytest.mark.parametrize("cell,hidden,lanes,theta", [
    ("gru", 9, 3, 4),      # few lanes: the issuer is the bottleneck
    ("gru", 20, 8, 40),    # a high threshold: few columns fire, or none
    ("gru", 9, 16, 2),     # 3 words a column: the encoder is
    ("lstm", 9, 4, 3)])
def test_delta_step_cycles_equal_simulation(cell, hidden, lanes, theta, rng):
    ir = from_torch(make_model(cell, input_size=5, hidden=hidden, out=3))
    x = np.clip(np.cumsum(rng.normal(0, 0.3, (1, 6, 5)), axis=1), -2, 2)
    qm = quantize_model(ir, x)
    xq = qm.quantize_inputs(x)
    delta = [(theta, theta)]
    acc = Accelerator(qm, lanes, delta=delta)
    cycles = []
    for t in range(1, 7):
        got, c = run_accelerator(acc, xq[:, :t], "last", 3)
        assert np.array_equal(got, run_int(qm, xq[:, :t], delta=delta))
        cycles.append(c)
    fired = delta_fired_columns(qm, xq, delta)[0]
    modelled = [delta_step_cycles(acc.plan, 5, fired[t])["per_step"] for t in range(1, 6)]
    assert np.diff(cycles).tolist() == modelled
