"""The MAC array alone, in Amaranth's simulator, against a numpy model of its updates."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from stream_helpers import stream_put
from hwgen.rtl.fanout import LANES_PER_COPY, REGION_LANES, copy_groups, group_of
from hwgen.rtl.mac_array import ACC_SLICE_LANES, PICK_LANES, MacArray, pipeline_depth

W_WIDTH, ACC_WIDTH, DELTA_WIDTH, SHIFTS = 6, 24, 9, (0, 2, 5)


def _issues(rng, n, weight_depth, acc_depth, bias_depth, hot):
    """Random issues; with `hot`, runs of updates to one word back to back (forwarding:
    up to 5, beyond the four distances of the delayed write)."""
    out = []
    while len(out) < n:
        acc = int(rng.integers(acc_depth))
        for _ in range(int(rng.integers(1, 6)) if hot else 1):
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


def _run(dut, issues, acc_depth, gaps, rng):
    """Issue all (with `gaps` of no issue), then read every accumulator word back:
    (words, idle on each edge after the last issue). Above 8 lanes each slice is read at
    its own copy of the read address: slice g at word + g (mod the depth)."""
    groups = copy_groups(dut.lanes)
    got = np.zeros((acc_depth, dut.lanes), dtype=np.int64)
    idle_after = []

    async def tb(ctx):
        await stream_put(ctx, dut.issue, issues, stall=gaps, rng=rng)
        for k in range(pipeline_depth(dut.lanes) + 1):
            idle_after.append(ctx.get(dut.idle))
            await ctx.tick()
        for word in range(acc_depth):             # the shared read port: 2 edges to acc_word
            at = [(word + g) % acc_depth for g in range(groups)]
            ctx.set(dut.read_addr, at if groups > 1 else word)
            await ctx.tick().repeat(2)
            for n in range(dut.lanes):
                got[at[group_of(n)], n] = ctx.get(dut.acc_word[n])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got, idle_after


@pytest.mark.parametrize("lanes,hot,gaps", [(1, True, 0.0), (3, True, 0.3), (4, False, 0.5),
                                            (19, True, 0.3)])   # 3 groups of control copies
def test_updates_match_the_model(lanes, hot, gaps, rng):
    weights = rng.integers(-32, 32, (13, lanes))
    biases = rng.integers(-1000, 1000, (5, lanes))
    acc_depth = 6
    dut = MacArray(W_WIDTH, ACC_WIDTH, weights, biases, acc_depth, DELTA_WIDTH, SHIFTS)
    issues = _issues(rng, 120, len(weights), acc_depth, len(biases), hot)
    for word in range(acc_depth):                 # every word starts from its bias once
        issues.insert(0, dict(issues[0], acc_addr=word, bias=1))
    expected = _model(issues, weights, biases, acc_depth, lanes)
    got, idle_after = _run(dut, issues, acc_depth, gaps, rng)
    assert np.array_equal(got, expected)
    # busy while updates are in flight, idle as many edges after the last issue as the
    # pipeline is deep (above 8 lanes three more: the weight banks' second register, the
    # multiplier's registered operands, and the write of the registered sum)
    depth = pipeline_depth(lanes)
    assert depth == (9 if lanes > 8 else 6) and idle_after == [0] * depth + [1]


@pytest.mark.parametrize("lanes", [2, 5, 19])   # 19: 3 lane groups, each its delta's copy
def test_narrow_weights_share_multipliers_exactly(lanes, rng):
    """4-bit weights pack two lanes into one multiplier; the extremes (weights -8 and 7,
    deltas +-255, every pair where the packed operand wraps) give the exact products."""
    w_width, d_width = 4, 9
    edge = np.array([[-8, -8], [-1, -8], [-8, -1], [7, -8], [-8, 7], [7, 7], [0, -8], [-8, 0]])
    weights = np.concatenate([np.tile(edge, (1, (lanes + 1) // 2))[:, :lanes],
                              rng.integers(-8, 8, (6, lanes))])
    biases = rng.integers(-1000, 1000, (2, lanes))
    dut = MacArray(w_width, ACC_WIDTH, weights, biases, len(weights), d_width, SHIFTS)
    assert dut.multipliers == (lanes + 1) // 2
    issues = [{"w_addr": w, "acc_addr": w, "b_addr": 0, "bias": 1, "delta": d, "shift": 0}
              for w in range(len(weights)) for d in (-255, 255, -1, 3, 0)]
    for it in issues[1::2]:
        it["bias"] = 0
    got, _ = _run(dut, issues, len(weights), 0.2, rng)
    assert np.array_equal(got, _model(issues, weights, biases, len(weights), lanes))


def test_wide_weights_keep_a_multiplier_per_lane():
    assert MacArray(5, ACC_WIDTH, np.zeros((2, 3), int), np.zeros((1, 3), int), 2, 9,
                    SHIFTS).multipliers == 3


@pytest.mark.parametrize("lanes,groups", [(8, 1), (19, 3), (70, 9)])   # last groups of 3, 6
def test_lane_steering_registers_are_copied_per_group(lanes, groups):
    """Above `LANES_PER_COPY` lanes the base pick as decided, the alignment shift, the
    multipliers' delta and the addresses (and write enable) of the bias and accumulator
    slices (the datapath's read address too) are registers copied per group of lanes, the
    base pick and its forward flag per `PICK_LANES`, marked for synthesis to keep apart;
    the group copies are set from a copy per `REGION_LANES` (`spread`), the pick's from
    its copies per region."""
    import re
    from amaranth.back import verilog
    from amaranth.hdl import Value
    from hwgen.design_folder import COPY_ATTR
    dut = MacArray(W_WIDTH, ACC_WIDTH, np.zeros((13, lanes), int), np.zeros((5, lanes), int),
                   6, DELTA_WIDTH, SHIFTS)
    text = verilog.convert(dut, name="mac", ports=[
        dut.issue.valid, dut.issue.payload.as_value(), Value.cast(dut.read_addr),
        dut.acc_word.as_value(),
        dut.idle])

    def numbered(names, n):   # the names `copies` gives n copies (none for one)
        return {(name, str(k)) for name in names for k in range(n)} if n > 1 else set()

    slices = copy_groups(lanes, ACC_SLICE_LANES)
    copies = numbered(("align", "b_rd_addr", "delta"), groups)
    copies |= numbered(("align_r", "b_rd_addr_r", "delta_r"),
                       copy_groups(groups * LANES_PER_COPY, REGION_LANES))
    copies |= numbered(("next_pick",), copy_groups(lanes, REGION_LANES))
    # the base pick and its forward flag: a copy beside each few lanes' multiplexers
    copies |= numbered(("pick", "fwd1"), copy_groups(lanes, PICK_LANES))
    # the accumulator slices' addresses and write enable (the datapath's read address too):
    # registers beside each slice
    copies |= numbered(("out_rd_addr", "acc_rd_addr", "acc_wr_addr", "acc_wr_en"), slices)
    copies |= numbered(("acc_rd_addr_r", "acc_wr_addr_r", "acc_wr_en_r"),
                       copy_groups(slices * ACC_SLICE_LANES, REGION_LANES))
    named = set(re.findall(r"\b(\w+)_c(\d+)\b", text))
    if groups == 1:
        assert not named and COPY_ATTR not in text
    else:
        assert named == copies and COPY_ATTR in text
