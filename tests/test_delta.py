import numpy as np
import pytest

from conftest import make_model
from hwgen.delta import choose_thresholds, sweep
from hwgen.frontend import from_torch
from hwgen.quant import quantize_model
from hwgen.ref import DeltaStats, run_int


def smooth_model(cell, layers, rng, head_mode="every"):
    ir = from_torch(make_model(cell, layers=layers, head_mode=head_mode))
    x = np.clip(np.cumsum(rng.normal(0, 0.15, (24, 16, 5)), axis=1), -2, 2)
    qm = quantize_model(ir, x)
    return qm, qm.quantize_inputs(x)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_theta_zero_is_bit_identical_to_dense(cell, layers, rng):
    qm, xq = smooth_model(cell, layers, rng)
    stats = DeltaStats()
    y = run_int(qm, xq, delta=[(0, 0)] * layers, stats=stats)
    assert np.array_equal(y, run_int(qm, xq))
    # only exactly-unchanged columns were skipped
    assert 0 <= stats.macs_eliminated < 0.6


def test_counts_match_a_direct_count(rng):
    qm, xq = smooth_model("gru", 1, rng)
    stats = DeltaStats()
    run_int(qm, xq, delta=[(1 << 30, 1 << 30)], stats=stats)
    # huge thresholds: nothing fires after the first step
    n, t_len, i_size = xq.shape
    assert stats.fired == [n * (i_size + 13)]  # only the dense first step
    stats = DeltaStats()
    run_int(qm, xq, delta=[(0, 1 << 30)], stats=stats)
    # only input columns fire: count the nonzero input changes directly
    n, t_len, i_size = xq.shape
    x_changes = np.count_nonzero(np.diff(xq, axis=1)) + n * (i_size + 13)  # step 0 is dense
    assert stats.fired == [x_changes]
    assert stats.macs == [x_changes * 3 * qm.layers[0].hidden_size]
    assert stats.macs_dense == [n * t_len * (i_size + 13) * 3 * 13]


def test_elimination_grows_with_theta(rng):
    qm, xq = smooth_model("lstm", 2, rng)
    points = sweep(qm, xq, lambda y: 0.0, thetas=(0, 2, 8, 32))
    elim = [p.macs_eliminated for p in points]
    assert elim == sorted(elim) and elim[-1] > elim[0] + 0.3


def test_choice_respects_budget(rng):
    qm, xq = smooth_model("gru", 2, rng)
    dense = run_int(qm, xq).astype(float)

    def metric(y):  # negative RMS distance to the dense outputs, in output LSBs
        return -float(np.sqrt(np.mean((y - dense) ** 2)))
    best, path = choose_thresholds(qm, xq, metric, budget=1.0)
    assert best.metric >= -1.0
    assert best.macs_eliminated >= path[0].macs_eliminated
    assert all(b.macs_eliminated > a.macs_eliminated for a, b in zip(path, path[1:]))
    tighter, _ = choose_thresholds(qm, xq, metric, budget=0.2)
    assert tighter.macs_eliminated <= best.macs_eliminated


def test_bad_delta_arguments(rng):
    qm, xq = smooth_model("gru", 2, rng)
    with pytest.raises(ValueError, match="one \\(theta_x, theta_h\\) per layer: 2, not 1"):
        run_int(qm, xq, delta=[(0, 0)])
    with pytest.raises(ValueError, match="budget must be >= 0"):
        choose_thresholds(qm, xq, lambda y: 0.0, budget=-1)
