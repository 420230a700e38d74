"""Each Amaranth block against its reference operation, in Amaranth's simulator."""
import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data
from amaranth.sim import Simulator

from conftest import make_model
from hwgen.fixed import QFormat, requantize as np_requantize
from hwgen.frontend import from_torch
from hwgen.pwl import fit_pwl
from hwgen.quant import QuantConfig, quantize_model
from hwgen.ref import layer_activate
from hwgen.rtl.arith import requantize
from hwgen.rtl.elementwise import ElementwiseUnit
from hwgen.rtl.pwl_unit import LATENCY as PWL_LATENCY, PWLUnit
from hwgen.rtl.rom import (LATENCY as ROM_LATENCY, BankedROM, bank_depth_for, block_rams,
                           latency as rom_latency)


def comb_eval(dut_inputs, outputs, vectors, module=None):
    """Set inputs to each vector, read outputs combinationally."""
    got = []

    async def tb(ctx):
        for vec in vectors:
            for sig, v in zip(dut_inputs, vec):
                ctx.set(sig, int(v))
            got.append([ctx.get(o) for o in outputs])
    sim = Simulator(module)
    sim.add_testbench(tb)
    sim.run()
    return np.array(got)


@pytest.mark.parametrize("shift,to", [(3, QFormat(6, 0)), (0, QFormat(8, 2)), (-2, QFormat(12, 4))])
def test_requantize_expression(shift, to, rng):
    x = Signal(signed(16))
    y = Signal(signed(to.width))
    m = Module()
    m.d.comb += y.eq(requantize(x, to.frac + shift, to))
    edge = [-32768, 32767, -1, 0, 1, 4, -4, 12, -12, 2**shift if shift > 0 else 3]
    values = np.concatenate([edge, rng.integers(-32768, 32768, 300)])
    got = comb_eval([x], [y], [[v] for v in values], m)[:, 0]
    assert np.array_equal(got, np_requantize(values, to.frac + shift, to))


def _clocked(dut, testbench):
    """Run `testbench` on `dut` with a clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("n_words,bank_depth,bank_registers", [
    (11, 4, 1), (8, 8, 1), (5, 16, 1), (11, 4, 2), (5, 16, 2)])
def test_banked_rom_reads_every_address(n_words, bank_depth, bank_registers, rng):
    words = rng.integers(-128, 128, n_words).tolist()
    dut = BankedROM(signed(8), words, bank_depth, bank_registers=bank_registers)
    assert rom_latency(bank_registers) == ROM_LATENCY + bank_registers - 1
    addrs = rng.integers(0, n_words, 60)
    got = []

    async def tb(ctx):
        # a new address every cycle; its word appears `rom_latency` clock edges later
        edges = rom_latency(bank_registers)
        for k in range(len(addrs) + edges):
            if k < len(addrs):
                ctx.set(dut.addr, int(addrs[k]))
            await ctx.tick()
            if k + 1 >= edges:
                got.append(ctx.get(dut.data))
    _clocked(dut, tb)
    assert got[:len(addrs)] == [words[a] for a in addrs]


def test_banked_rom_with_address_copies_reads_each_slice_at_its_copy(rng):
    """Wide words (40 lanes of 9 bits = 360 bits, 10 DP16KD of 512 x 36 side by side) read
    through 3 address copies: every slice of every bank at its own copy (the bank from copy
    0); a copy that lags shows in its slice's lanes only."""
    lanes = data.ArrayLayout(signed(9), 40)
    words = rng.integers(-256, 256, (24, 40)).tolist()
    dut = BankedROM(lanes, words, 8, copies=3)
    assert [hi - lo for lo, hi in dut._slices(360)] == [144, 144, 72]
    addrs = rng.integers(0, len(words), 40)
    got = []

    async def tb(ctx):
        for k in range(len(addrs) + ROM_LATENCY):
            if k < len(addrs):
                for g in range(3):   # copy 2 lags: its slice's lanes show the word before
                    ctx.set(dut.addr[g], int(addrs[k - (g == 2 and k > 0)]))
            await ctx.tick()
            if k + 1 >= ROM_LATENCY:
                got.append([ctx.get(dut.data[j]) for j in range(40)])
    _clocked(dut, tb)
    first = 288 // 9    # lanes of the first two slices
    for k, a in enumerate(addrs):
        lag = a // 8 * 8 + addrs[k - (k > 0)] % 8    # copy 2's offset in copy 0's bank
        assert got[k][:first] == words[a][:first] and got[k][first:] == words[lag][first:]


def test_banked_rom_of_lanes_reads_every_address_from_raw_bits(rng):
    """A layout-shaped ROM (lanes of signed words): every lane read back, and the banks hold
    raw bits, so no wire is named port__data[k] beside port__data (Yosys 0.70 joined two
    DP16KD outputs over such names; `hwgen.rtl.rom`)."""
    lanes = data.ArrayLayout(signed(8), 2)
    words = rng.integers(-128, 128, (11, 2)).tolist()
    dut = BankedROM(lanes, words, 4)
    assert "port__data[" not in verilog.convert(dut, name="rom")
    got = []

    async def tb(ctx):
        for a in range(len(words) + ROM_LATENCY):
            ctx.set(dut.addr, min(a, len(words) - 1))
            await ctx.tick()
            if a + 1 >= ROM_LATENCY:
                got.append([ctx.get(dut.data[k]) for k in range(2)])
    _clocked(dut, tb)
    assert got[:len(words)] == words


def test_bank_depth_is_one_dp16kd_deep():
    assert [bank_depth_for(w) for w in (1, 4, 8, 9, 10, 16, 18, 36, 64)] == \
        [16384, 4096, 2048, 2048, 1024, 1024, 1024, 512, 512]


def test_wide_banks_take_the_depth_that_wastes_fewest_block_rams():
    # 256-bit words: 512 x 36 wastes 32 of 288 bits a bank, 1024 x 18 only 14 of 270
    assert block_rams(256, 7360, 512) == 14 * 8 + 8 and block_rams(256, 7360, 1024) == 113
    assert bank_depth_for(256, 7360) == 1024
    assert bank_depth_for(512, 3808) == 2048 and block_rams(512, 3808, 2048) == 114
    assert bank_depth_for(1024, 1904) == 2048   # one bank of 114, not two of 57
    # equal counts keep the shape that holds a word in one block RAM
    assert [bank_depth_for(w, 1400) for w in (8, 16, 36, 64)] == [2048, 1024, 512, 512]
    assert bank_depth_for(46, 1400) == 1024   # 3 + 2 block RAMs, not 2 + 2 + 2


# Q(9,5) rounds the slope term (a right shift); Q(9,0) with tanh needs none (left shift).
@pytest.mark.parametrize("func", ["sigmoid", "tanh"])
@pytest.mark.parametrize("form", ["mult", "shift"])
@pytest.mark.parametrize("in_frac", [5, 0])
def test_pwl_unit_every_code(func, form, in_frac):
    p = fit_pwl(func, QFormat(9, in_frac), QFormat(8, 7), 16, form)
    dut = PWLUnit(p)
    codes = np.arange(-256, 256)
    got = []

    async def tb(ctx):
        # a new input every cycle; each result appears PWL_LATENCY cycles later
        for k in range(len(codes) + PWL_LATENCY):
            if k < len(codes):
                ctx.set(dut.x, int(codes[k]))
            await ctx.tick()
            if k + 1 >= PWL_LATENCY:
                got.append(ctx.get(dut.y))
    _clocked(dut, tb)
    assert np.array_equal(np.array(got[:len(codes)]), p.evaluate(codes))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_elementwise_unit_matches_reference(cell, rng):
    ir = from_torch(make_model(cell, hidden=6))
    qm = quantize_model(ir, rng.uniform(-1, 1, (16, 5, 5)), QuantConfig(weight_bits=6,
                                                                       act_bits=7))
    layer = qm.layers[0]
    width = layer.acc_width
    n = 200
    acc = rng.integers(-(1 << (width - 1)), 1 << (width - 1), (n, 4 * 6))
    acc[:20] = (1 << (width - 1)) - 1  # saturating pre-activations
    h = rng.integers(layer.h_fmt.min_int, layer.h_fmt.max_int + 1, (n, 6))
    c = rng.integers(layer.c_fmt.min_int, layer.c_fmt.max_int + 1, (n, 6)) if layer.c_fmt \
        else None
    h_exp, c_exp = layer_activate(layer, acc, h, c)
    dut = ElementwiseUnit(layer, width, tag_width=12)
    got_h, got_c = {}, {}

    async def feed(ctx):
        # one element a cycle, with a gap now and then
        for s in range(n):
            for e in range(6):
                for q in range(4):
                    ctx.set(getattr(dut, f"acc{q}"), int(acc[s, q * 6 + e]))
                ctx.set(dut.h_prev, int(h[s, e]))
                if c is not None:
                    ctx.set(dut.c_prev, int(c[s, e]))
                ctx.set(dut.tag, s * 6 + e)
                ctx.set(dut.valid_in, 1)
                await ctx.tick()
                if (s + e) % 7 == 0:
                    ctx.set(dut.valid_in, 0)
                    await ctx.tick()
        ctx.set(dut.valid_in, 0)
        await ctx.tick().repeat(dut.latency + 2)

    async def collect(ctx):
        async for _, _, valid, tag, hn, cn in ctx.tick().sample(
                dut.valid_out, dut.tag_out, dut.h_new, dut.c_new):
            if valid:
                got_h[tag], got_c[tag] = hn, cn
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_process(collect)
    sim.run()
    got_h = [got_h[i] for i in range(n * 6)]
    got_c = [got_c[i] for i in range(n * 6)]
    assert np.array_equal(np.array(got_h).reshape(n, 6), h_exp)
    if c is not None:
        assert np.array_equal(np.array(got_c).reshape(n, 6), c_exp)
