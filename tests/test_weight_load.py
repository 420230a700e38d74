"""Weights loaded through a stream (`weights="load"`): the memory alone, then the whole
accelerator in Amaranth's simulator, bit-exact and on the cycle model once loaded."""
import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from amaranth_harness import run_accelerator
from conftest import make_model
from stream_helpers import stream_put
from hwgen.frontend import from_torch
from hwgen.quant import QuantConfig, quantize_model
from hwgen.ref import run_int
from hwgen.rtl.cycles import cycle_model
from hwgen.rtl.plan import (PlanError, WEIGHT_BEAT, make_plan, pack_lanes, weight_image,
                            weight_word_beats)
from hwgen.rtl.rom import LATENCY, LoadedRAM
from hwgen.rtl.top import Accelerator


def model(cell, layers, head_mode, bits=8, rng=None, smooth=False):
    ir = from_torch(make_model(cell, input_size=5, hidden=7, out=3, layers=layers,
                               head_mode=head_mode))
    if smooth:   # deltas that vary
        x = np.clip(np.cumsum(rng.normal(0, 0.3, (3, 5, 5)), axis=1), -2, 2)
    else:
        x = rng.uniform(-1.5, 1.5, (3, 4, 5))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=bits, act_bits=8))
    return qm, qm.quantize_inputs(x)


@pytest.mark.parametrize("lanes,width", [(3, 8), (1, 8), (2, 4), (5, 6)])
def test_loaded_ram_reads_back_its_image(lanes, width, rng):
    """Words of 24, 8 (one beat), 8 and 30 bits: each read `LATENCY` edges after its
    address, after a load under stalls."""
    shape = data.ArrayLayout(signed(width), lanes)
    words = rng.integers(-(1 << (width - 1)), 1 << (width - 1), (11, lanes))
    beats = -(-width * lanes // WEIGHT_BEAT)
    image = b"".join(pack_lanes(w, width).to_bytes(beats, "little") for w in words)
    dut = LoadedRAM(shape, len(words), WEIGHT_BEAT)
    got = []

    async def bench(ctx):
        assert not ctx.get(dut.loaded)
        await stream_put(ctx, dut.load, image, stall=0.3, rng=rng)
        await ctx.tick().until(dut.loaded)
        assert not ctx.get(dut.load.ready)   # the image is whole: no more bytes
        for a in range(len(words)):
            ctx.set(dut.addr, a)
            await ctx.tick().repeat(LATENCY)
            got.append([ctx.get(dut.data[k]) for k in range(lanes)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert np.array_equal(np.array(got), words)


@pytest.mark.parametrize("cell,layers,head_mode,lanes,theta", [
    ("gru", 1, "last", 3, None),     # overlapped steps: the loader ahead waits too
    ("lstm", 2, "every", 2, None), ("gru", 2, "last", 5, 2), ("lstm", 1, "every", 1, 0),
    ("gru", 1, "last", 10, None)])   # above 8 lanes: the memory's output registered twice
def test_loaded_weights_bit_exact_under_stalls(cell, layers, head_mode, lanes, theta, rng):
    """The image under stalls on the weight stream, inputs offered from the first cycle (the
    harness fails if one is taken before the image's last byte), both other streams
    stalled; every output equals the reference."""
    qm, xq = model(cell, layers, head_mode, rng=rng, smooth=theta is not None)
    delta = None if theta is None else [(theta, theta)] * layers
    acc = Accelerator(qm, lanes, delta=delta, weights="load")
    got, _ = run_accelerator(acc, xq, head_mode, 3, 0.3, 0.3, seed=lanes,
                             weights=weight_image(acc.plan), stall_weights=0.3)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))


@pytest.mark.parametrize("design", ["token_rom", "folded"])
def test_loaded_weights_with_token_inputs(design, rng):
    """Token ids in (an embedding in a token ROM, or folded into layer 0's weights, which
    then load too): the token waits for the weights as well."""
    from test_embedding import OUT, quantized
    qm, x = quantized(rng, "gru", "every", design=design)
    acc = Accelerator(qm, 3, weights="load")
    got, _ = run_accelerator(acc, x, "every", OUT, 0.3, 0.3, weights=weight_image(acc.plan),
                             stall_weights=0.3)
    assert np.array_equal(got, run_int(qm, x))


def test_loaded_narrow_weights_on_shared_multipliers(rng):
    """4-bit weights, two lanes a multiplier: the pair operands are packed from the loaded
    word (odd lanes: one left alone)."""
    qm, xq = model("gru", 1, "last", bits=4, rng=rng)
    acc = Accelerator(qm, 5, weights="load")
    got, _ = run_accelerator(acc, xq, "last", 3, 0.2, 0.2, weights=weight_image(acc.plan),
                             stall_weights=0.2)
    assert np.array_equal(got, run_int(qm, xq))


@pytest.mark.parametrize("cell,head_mode,lanes", [("gru", "last", 3), ("lstm", "every", 2)])
def test_loaded_design_runs_on_the_cycle_model(cell, head_mode, lanes, rng):
    """Once loaded, a step takes the ROM design's cycles: the cycle model's."""
    qm, xq = model(cell, 1, head_mode, rng=rng)
    acc = Accelerator(qm, lanes, weights="load")
    image = weight_image(acc.plan)
    model_ = cycle_model(acc.plan, 5)
    per_step = model_["per_step"] + (model_["head"] if head_mode == "every" else 0)
    _, c2 = run_accelerator(acc, xq[:1, :2], head_mode, 3, weights=image)
    _, c3 = run_accelerator(acc, xq[:1, :3], head_mode, 3, weights=image)
    assert c3 - c2 == per_step
    _, rom2 = run_accelerator(Accelerator(qm, lanes), xq[:1, :2], head_mode, 3)
    assert c2 - rom2 == len(image)   # a byte a cycle: the last one writes the last word


def test_a_wrong_weight_word_shows(rng):
    """One byte of the image changed (a weight of layer 0's first column): the outputs no
    longer match, so the check does see what is loaded."""
    qm, xq = model("gru", 1, "last", rng=rng)
    acc = Accelerator(qm, 3, weights="load")
    image = bytearray(weight_image(acc.plan))
    image[0] ^= 0x40
    got, _ = run_accelerator(acc, xq, "last", 3, weights=bytes(image))
    assert not np.array_equal(got, run_int(qm, xq))


def test_weight_image_holds_the_weight_words(rng):
    """The image is the weight words in address order, each in whole bytes, lane 0 lowest."""
    qm, _ = model("gru", 1, "last", bits=6, rng=rng)
    plan = make_plan(qm, 3)
    beats = weight_word_beats(plan)
    assert beats == 3    # 3 lanes x 6 bits = 18 bits
    image = weight_image(plan)
    assert len(image) == beats * len(plan.weight_words)
    for k, row in enumerate(plan.weight_words):
        word = int.from_bytes(image[k * beats:(k + 1) * beats], "little")
        assert word >> 18 == 0
        lanes = [(word >> (6 * j)) & 63 for j in range(3)]
        assert [v - 64 if v >= 32 else v for v in lanes] == row.tolist()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bad_weight_storage_is_refused(rng):
    qm, _ = model("gru", 1, "last", rng=rng)
    with pytest.raises(PlanError, match="weights must be one of rom, load, not 'spram'"):
        Accelerator(qm, 2, weights="spram")
