"""The MAC array alone, in Amaranth's simulator, against a numpy model of its updates."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from stream_helpers import stream_put
from hwgen.rtl.mac_array import PIPELINE_DEPTH, MacArray

W_WIDTH, ACC_WIDTH, DELTA_WIDTH, SHIFTS = 6, 24, 9, (0, 2, 5)


def _issues(rng, n, weight_depth, acc_depth, bias_depth, hot):
    """Random issues; with `hot`, runs of updates to one word back to back (forwarding)."""
    out = []
    while len(out) < n:
        acc = int(rng.integers(acc_depth))
        for _ in range(int(rng.integers(1, 4)) if hot else 1):
            out.append({"w_addr": int(rng.integers(weight_depth)), "acc_addr": acc,
                        "b_addr": int(rng.integers(bias_depth)), "bias": int(rng.random() < .2),
                        "delta": int(rng.integers(-(1 << 8), 1 << 8)),
                        "shift": int(rng.integers(len(SHIFTS)))})
    return out[:n]


def _model(issues, weights, biases, acc_depth, lanes):
    acc = np.zeros((acc_depth, lanes), dtype=np.int64)
    for it in issues:
        base = biases[it["b_addr"]] if it["bias"] else acc[it["acc_addr"]]
        acc[it["acc_addr"]] = base + (weights[it["w_addr"]] * it["delta"] << SHIFTS[it["shift"]])
    return acc


@pytest.mark.parametrize("lanes,hot,gaps", [(1, True, 0.0), (3, True, 0.3), (4, False, 0.5)])
def test_updates_match_the_model(lanes, hot, gaps, rng):
    weights = rng.integers(-32, 32, (13, lanes))
    biases = rng.integers(-1000, 1000, (5, lanes))
    acc_depth = 6
    dut = MacArray(W_WIDTH, ACC_WIDTH, weights, biases, acc_depth, DELTA_WIDTH, SHIFTS)
    issues = _issues(rng, 120, len(weights), acc_depth, len(biases), hot)
    for word in range(acc_depth):                 # every word starts from its bias once
        issues.insert(0, dict(issues[0], acc_addr=word, bias=1))
    expected = _model(issues, weights, biases, acc_depth, lanes)
    got, idle_after = [], []

    async def tb(ctx):
        await stream_put(ctx, dut.issue, issues, stall=gaps, rng=rng)  # gaps: no issue
        for k in range(PIPELINE_DEPTH + 1):
            idle_after.append(ctx.get(dut.idle))
            await ctx.tick()
        for word in range(acc_depth):             # the shared read port: 2 edges to acc_word
            ctx.set(dut.read_addr, word)
            await ctx.tick().repeat(2)
            got.append([ctx.get(dut.acc_word[n]) for n in range(lanes)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert np.array_equal(np.array(got), expected)
    # busy while updates are in flight, idle PIPELINE_DEPTH edges after the last issue
    assert idle_after == [0] * PIPELINE_DEPTH + [1]
