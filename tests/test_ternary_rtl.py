"""The multiplier-free ternary datapath (issue 12 §3) against `hwgen.ref.run_int`, bit for bit.

Whole-accelerator runs in Amaranth's simulator and the emitted Verilog under cocotb +
Verilator: odd sizes, lanes 1/3/8, L = 1..3, sparsity 0/50/90 %, dense and delta, with
random stalls on both streams; the cycle model against simulation; cycles per step falling
with sparsity.
"""
import dataclasses
import json

import numpy as np
import pytest

from amaranth_harness import run_accelerator
from conftest import make_model
from hwgen import flow
from hwgen.frontend import from_torch
from hwgen.ref import run_int
from hwgen.rtl.cycles import delta_fired_columns, ternary_cycle_model, ternary_delta_step_cycles
from hwgen.rtl.top import Accelerator
from hwgen.rtl.ternary_plan import naf_digits
from hwgen.ternary import ternarize

I_SIZE, OUT = 5, 3
CHARLM = "charlm_gru2_t2s80g"   # the shipped ternary char LM (pruned over the model)
CHARLM_HEAD = "charlm_gru2_t2s80gh"   # the same, its head with levels too
BIG_CHARLM = "charlm_gru128_t2s80glr0p02"   # the larger one's (GRU H=128)


def ternary_model(cell, layers, head_mode, levels, sparsity, hidden=7, seed=0, n=4, t_len=5,
                  head=False, out=OUT):
    """A small random model with `levels` ternary levels, each matrix pruned at random to
    `sparsity` (the head's too with `head`: it then has levels), and smooth inputs (so
    that deltas vary)."""
    rng = np.random.default_rng(seed)
    ir = from_torch(make_model(cell, input_size=I_SIZE, hidden=hidden, out=out, layers=layers,
                               head_mode=head_mode, seed=seed))
    masks = [(rng.random(layer.w_ih.shape) >= sparsity, rng.random(layer.w_hh.shape) >= sparsity)
             for layer in ir.layers]
    x = np.clip(np.cumsum(rng.normal(0, 0.3, (n, t_len, I_SIZE)), axis=1), -2, 2)
    head_mask = rng.random(ir.head.weight.shape) >= sparsity
    qm = ternarize(ir, x, levels, masks=masks, head=head, head_mask=head_mask).qm
    return qm, qm.quantize_inputs(x)


def test_naf_digits_rebuild_the_weights():
    w = np.arange(-128, 128)
    d = naf_digits(w)
    assert d.shape[0] <= 8
    assert np.array_equal((d.astype(np.int64) << np.arange(len(d))[:, None]).sum(0), w)
    assert not np.any((d[1:] != 0) & (d[:-1] != 0))   # no two adjacent digits nonzero


@pytest.mark.parametrize("cell,layers,head_mode,lanes,levels,sparsity,theta", [
    ("gru", 1, "last", 3, 2, 0.5, None), ("lstm", 2, "every", 8, 3, 0.9, None),
    ("gru", 2, "last", 1, 1, 0.0, None), ("lstm", 1, "last", 3, 2, 0.5, 2),
    ("gru", 1, "every", 8, 3, 0.9, 0), ("ligru", 1, "last", 3, 1, 0.9, 3),
    ("sru", 2, "last", 3, 2, 0.5, None),   # no recurrent matrix; layer 1's identity highway
    ("sru", 1, "every", 8, 2, 0.8, 2),
])
def test_bit_exact_under_stalls(cell, layers, head_mode, lanes, levels, sparsity, theta):
    qm, xq = ternary_model(cell, layers, head_mode, levels, sparsity, seed=lanes)
    delta = None if theta is None else [(theta, theta)] * layers
    acc = Accelerator(qm, lanes, delta=delta)
    assert acc.ternary_plan is not None
    got, _ = run_accelerator(acc, xq, head_mode, OUT, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))


def measured_per_step(acc, xq, head_mode, out_size=OUT):
    _, c2 = run_accelerator(acc, xq[:1, :2], head_mode, out_size)
    _, c3 = run_accelerator(acc, xq[:1, :3], head_mode, out_size)
    return c3 - c2


@pytest.mark.parametrize("cell,layers,head_mode,lanes,levels", [
    ("gru", 1, "every", 3, 2), ("lstm", 2, "last", 8, 3)])
def test_cycle_model_matches_simulation_and_falls_with_sparsity(cell, layers, head_mode,
                                                               lanes, levels):
    steps = []
    for sparsity in (0.0, 0.5, 0.9):
        qm, xq = ternary_model(cell, layers, head_mode, levels, sparsity, hidden=9)
        acc = Accelerator(qm, lanes)
        model = ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE, head_mode)
        assert measured_per_step(acc, xq, head_mode) == model["model_per_step"]
        steps.append(model["per_step"])
    assert steps[0] > steps[1] > steps[2], steps


@pytest.mark.parametrize("cell,layers,lanes,levels,sparsity,theta", [
    ("gru", 1, 3, 2, 0.5, 2), ("lstm", 2, 8, 3, 0.9, 3), ("gru", 1, 1, 1, 0.0, 0)])
def test_delta_cycle_model_matches_simulation(cell, layers, lanes, levels, sparsity, theta):
    """Each delta step's cycles from the columns that fire in it (the reference's): the
    first step fires all (the dense model); with a threshold later ones fire fewer and
    cost less."""
    qm, xq = ternary_model(cell, layers, "last", levels, sparsity, hidden=9, seed=lanes)
    delta = [(theta, theta)] * layers
    acc = Accelerator(qm, lanes, delta=delta)
    # the columns of the model the design runs: its units in their balanced order
    fired = delta_fired_columns(acc.qm, xq[:1, :3], delta)[0]
    measured = [run_accelerator(acc, xq[:1, :t], "last", OUT)[1] for t in (1, 2, 3)]
    modelled = [ternary_delta_step_cycles(acc.plan, acc.ternary_plan, I_SIZE, f)["per_step"]
                for f in fired]
    assert modelled[0] == ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE,
                                              "last")["per_step"]
    assert [measured[1] - measured[0], measured[2] - measured[1]] == modelled[1:]
    if theta:   # a threshold leaves columns unfired: fewer words, fewer cycles
        assert all(sum(map(sum, f)) < sum(map(sum, fired[0])) for f in fired[1:])
        assert max(modelled[1:]) < modelled[0]


@pytest.mark.parametrize("scale_step,lanes,theta", [(1, 3, None), (2, 8, 2), (64, 2, None)])
def test_every_scale_step_is_bit_exact_in_its_modelled_cycles(scale_step, lanes, theta):
    """The combiner's scale bits a cycle: one (bit-serial), some, all (one cycle a term)."""
    qm, xq = ternary_model("gru", 1, "every", 2, 0.5, hidden=9, seed=scale_step)
    delta = None if theta is None else [(theta, theta)]
    acc = Accelerator(qm, lanes, delta=delta, scale_step=scale_step)
    tp = acc.ternary_plan
    assert tp.scale_step == min(scale_step, tp.scale_bits)
    got, _ = run_accelerator(acc, xq, "every", OUT, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))
    if theta is None:
        model = ternary_cycle_model(acc.plan, tp, I_SIZE, "every")
        assert measured_per_step(acc, xq, "every") == model["model_per_step"]


@pytest.mark.parametrize("cell,layers,head_mode,lanes,levels,theta", [
    ("gru", 1, "every", 3, 2, None), ("lstm", 2, "last", 8, 3, 2)])
def test_a_head_with_levels_is_bit_exact_in_its_modelled_cycles(cell, layers, head_mode,
                                                                lanes, levels, theta):
    """A head with ternary levels runs its levels, scaled per output as a layer's are, not
    its weights' digits: bit-exact under stalls, in the modelled cycles, and its pass
    stores fewer words when it is pruned harder."""
    words = []
    for sparsity in (0.0, 0.8):
        qm, xq = ternary_model(cell, layers, head_mode, levels, sparsity, hidden=9,
                               seed=lanes, head=True)
        assert qm.ternary_head.levels == levels
        delta = None if theta is None else [(theta, theta)] * layers
        acc = Accelerator(qm, lanes, delta=delta)
        tp = acc.ternary_plan
        head = len(tp.ptr_base) - 2
        first, end = tp.ptr_base[head], tp.ptr_base[head + 1]
        words.append(sum(count for _, count, _ in tp.pointers[first:end]))
        head_terms = tp.terms[tp.term_base[head]:tp.term_base[head + 1]]
        assert len(head_terms) <= levels * -(-OUT // lanes)   # a term per level and word
        got, _ = run_accelerator(acc, xq, head_mode, OUT, 0.3, 0.3, seed=lanes)
        assert np.array_equal(got, run_int(qm, xq, delta=delta))
        model = ternary_cycle_model(acc.plan, tp, I_SIZE, head_mode)
        assert model["head_stored_words"] == words[-1]
        assert model["model_stored_words_per_step"] == model["stored_words_per_step"] + (
            words[-1] if head_mode == "every" else 0)
        if theta is None:
            assert measured_per_step(acc, xq, head_mode) == model["model_per_step"]
    assert words[1] < words[0], words


def test_terms_that_no_digit_reaches_are_left_out():
    """The combine walks only the level sums some stored digit adds into; a word that none
    reaches keeps one term of scale 0 (its bias, written). The 9-lane GRU below has such a
    word, of one term of one digit: its bias is read and its sum written in one cycle."""
    qm, _ = ternary_model("gru", 1, "last", 2, 0.9, hidden=19, seed=9)
    tp = Accelerator(qm, 9).ternary_plan
    written = {side << tp.local_bits | a for start, count, side in tp.pointers
               for digits, addrs in tp.entries[start:start + count]
               for d, a in zip(digits, addrs) if d}
    words = {}
    for term in tp.terms:
        words.setdefault(term[1], []).append(term)
    # all of them: 3 row groups x (r, z: 2 sides x 2 levels; n_x, n_h: 1 side x 2 levels)
    assert tp.pass_terms(0) < 3 * (4 + 4 + 2 + 2)
    for terms in words.values():
        assert terms[0][3] and terms[-1][4] and not any(t[3] for t in terms[1:])
        reached = [t for t in terms if t[0] in written]
        assert reached == terms or (len(terms) == 1 and not any(terms[0][5]))
    assert any(len(t) == 1 and tp.term_digits(t[0]) == 1 for t in words.values())


@pytest.mark.parametrize("cell,lanes,theta", [("gru", 9, None), ("gru", 9, 2),
                                               ("lstm", 12, None), ("ligru", 10, 3)])
def test_more_lanes_than_the_up5k_has_multipliers(cell, lanes, theta):
    """9 to 12 lanes (the UP5K has 8 SB_MAC16), a partial last row group (H = 19): bit-exact
    under stalls, and the dense and delta cycle models equal to simulation."""
    qm, xq = ternary_model(cell, 1, "last", 2, 0.9, hidden=19, seed=lanes)
    delta = None if theta is None else [(theta, theta)]
    acc = Accelerator(qm, lanes, delta=delta)
    got, _ = run_accelerator(acc, xq, "last", OUT, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))
    if theta is None:
        model = ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE, "last")
        assert measured_per_step(acc, xq, "last") == model["per_step"]
    else:
        fired = delta_fired_columns(acc.qm, xq[:1, :3], delta)[0]
        measured = [run_accelerator(acc, xq[:1, :t], "last", OUT)[1] for t in (2, 3)]
        assert measured[1] - measured[0] == ternary_delta_step_cycles(
            acc.plan, acc.ternary_plan, I_SIZE, fired[2])["per_step"]


@pytest.mark.parametrize("theta", [None, 2])
def test_entries_over_several_block_ram_banks(theta):
    """More entries than one bank holds: the banked entry ROM (`BankedROM`, its bank
    registers and select) in place of the one-bank ROM with its address registered, the
    same edges: bit-exact and in the modelled cycles."""
    from hwgen.rtl.rom import bank_depth_for
    from hwgen.rtl.ternary_plan import entry_width
    qm, xq = ternary_model("gru", 1, "last", 3, 0.0, hidden=19, n=2, t_len=3)
    delta = None if theta is None else [(theta, theta)]
    acc = Accelerator(qm, 3, delta=delta)
    tp = acc.ternary_plan
    assert len(tp.entries) > 2 * bank_depth_for(entry_width(tp))
    got, _ = run_accelerator(acc, xq, "last", OUT, 0.3, 0.3, seed=3)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))
    if theta is None:
        model = ternary_cycle_model(acc.plan, tp, I_SIZE, "last")
        assert measured_per_step(acc, xq, "last") == model["per_step"]


def multipliers(acc) -> dict:
    """$mul cells per module of the elaborated design."""
    from amaranth.back import rtlil
    text = rtlil.convert(acc, name="top")
    return {mod.split("\n")[0]: mod.count("cell $mul ") for mod in text.split("\nmodule ")
            if "cell $mul " in mod}


def test_the_matrix_work_has_no_multiplier():
    qm, _ = ternary_model("lstm", 1, "last", 2, 0.5)
    ternary = multipliers(Accelerator(qm, 4))
    plain = multipliers(Accelerator(dataclasses.replace(qm, ternary=None), 4))
    # the same model on the 8-bit path (W_int in a weight ROM): the MAC array's P lanes
    assert plain.pop("\\top.mac") == 4
    assert ternary == plain   # only the element-wise units' (and activate's) remain
    assert not any(name.startswith(("\\top.level_sums", "\\top.combiner")) for name in ternary)


@pytest.mark.parametrize("cell,lanes,levels", [("gru", 1, 3), ("lstm", 3, 2), ("ligru", 8, 1)])
def test_entries_hold_a_sign_and_a_side_local_address(cell, lanes, levels):
    """An entry word is a lane's sign bit and side-local S address; a lane without a digit
    names the dump word, which no term reads (else its sum would leak into an accumulator);
    the column's side comes from its pointer."""
    from hwgen.rtl.plan import make_plan
    from hwgen.rtl.ternary_plan import entry_width, make_ternary_plan
    qm, _ = ternary_model(cell, 1, "last", levels, 0.5, hidden=9)
    tp = make_ternary_plan(qm, make_plan(qm, lanes))
    assert entry_width(tp) == lanes * (1 + tp.local_bits)
    read = {t[0] for t in tp.terms}
    assert not any(a & tp.dump == tp.dump for a in read)
    assert tp.s_depth <= 2 << tp.local_bits and max(read) < tp.s_depth
    for digits, addrs in tp.entries:
        assert all((a == tp.dump) == (d == 0) for d, a in zip(digits, addrs))
    first_h = qm.input_size
    assert [k for _, _, k in tp.pointers[:tp.ptr_base[1]]] == \
        [int(j >= first_h) for j in range(tp.ptr_base[1])]
    # every stored digit reaches a level sum that a term reads
    for p in range(len(tp.ptr_base) - 1):
        for start, count, side in tp.pointers[tp.ptr_base[p]:tp.ptr_base[p + 1]]:
            for digits, addrs in tp.entries[start:start + count]:
                assert all(side << tp.local_bits | a in read
                           for d, a in zip(digits, addrs) if d)


def test_pointers_and_digits_share_one_schedule_rom():
    """The pointer reader's words and the combiner's digit words in one memory, one read
    port: the combiner's read wins while it walks; a pointer read is held while its enable
    is low (a span waits)."""
    from amaranth.sim import Simulator
    from hwgen.rtl.plan import make_plan
    from hwgen.rtl.ternary_array import ScheduleROM, pointer_words
    from hwgen.rtl.ternary_plan import digit_words, make_ternary_plan
    qm, _ = ternary_model("gru", 1, "last", 2, 0.5, hidden=9)
    tp = make_ternary_plan(qm, make_plan(qm, 3))
    rom = ScheduleROM(tp)
    ptrs, digits = pointer_words(tp), digit_words(tp)
    assert rom.digit_base == len(ptrs) and len({ptrs[0], ptrs[1], ptrs[2]}) == 3
    assert digits[0] != digits[-1]

    async def bench(ctx):
        for a, want in [(1, ptrs[1]), (2, ptrs[2])]:
            ctx.set(rom.ptr_addr, a)
            ctx.set(rom.ptr_en, 1)
            await ctx.tick()
            assert ctx.get(rom.data) == want
        ctx.set(rom.ptr_en, 0)
        ctx.set(rom.ptr_addr, 0)
        await ctx.tick()
        assert ctx.get(rom.data) == ptrs[2]                  # held
        for d in (0, len(digits) - 1):
            ctx.set(rom.digit_addr, rom.digit_base + d)
            ctx.set(rom.digit_read, 1)
            await ctx.tick()
            assert ctx.get(rom.data) == digits[d]
        ctx.set(rom.digit_read, 0)
        ctx.set(rom.ptr_en, 1)
        await ctx.tick()
        assert ctx.get(rom.data) == ptrs[0]

    sim = Simulator(rom)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    from amaranth.back import rtlil
    text = rtlil.convert(Accelerator(qm, 3), name="top")
    assert "schedule" in text and "ptr_rom" not in text and "d_rom" not in text


def test_manifest_records_the_ternary_datapath(tmp_path):
    from hwgen.rtl.emit import generate
    qm, xq = ternary_model("gru", 1, "last", 2, 0.5)
    design = generate(qm, tmp_path / "d", lanes=3, inputs=xq)
    manifest = json.loads((design / "manifest.json").read_text())
    t = manifest["ternary"]
    assert t["levels"] == 2 and t["multipliers"] == 0
    assert 0 < t["stored_words"] <= t["dense_words"]
    assert (design / "entries.hex").read_text().count("\n") == \
        t["stored_words"] + t["stored_words_head"]
    assert not (design / "weights.hex").exists()


# ---- the emitted Verilog under cocotb + Verilator (about 30 s each)
COCOTB = [("gru", 1, 3, "last", 2, 0.5, None, "rom"),
          ("lstm", 2, 8, "every", 3, 0.9, None, "rom"),
          ("gru", 2, 1, "every", 1, 0.0, 3, "rom"),
          ("gru", 1, 10, "last", 2, 0.5, None, "rom"),   # above 8 lanes: registered products
          ("lstm", 1, 3, "every", 2, 0.8, None, "load"),  # entries loaded first (weights.bin)
          ("sru", 2, 5, "last", 2, 0.8, None, "rom")]     # no recurrent matrix


@pytest.mark.slow
@pytest.mark.parametrize("cell,layers,lanes,head_mode,levels,sparsity,theta,weights", COCOTB)
def test_rtl_bit_exact(cell, layers, lanes, head_mode, levels, sparsity, theta, weights,
                       tmp_path):
    from hwgen import registered_product
    from hwgen.rtl.emit import generate
    from hwgen.sim import simulate
    from test_cocotb_designs import assert_step_intervals
    from test_cocotb_designs import T_LEN
    qm, xq = ternary_model(cell, layers, head_mode, levels, sparsity, hidden=13, seed=lanes,
                           n=60, t_len=T_LEN)
    fmt = qm.input_fmt
    xq[:6] = np.where(np.random.default_rng(1).random(xq[:6].shape) < 0.5, fmt.min_int,
                      fmt.max_int)   # saturation
    delta = None if theta is None else [(theta, theta)] * layers
    design = generate(qm, tmp_path / "design", lanes=lanes, inputs=xq, delta=delta,
                      weights=weights)
    # above 8 lanes the element-wise units' products are the registered product module's
    manifest = json.loads((design / "manifest.json").read_text())
    assert (registered_product.FILE in manifest["interface"]["verilog"]) == (lanes > 8)
    result = simulate(design, seed=lanes, stall_in=0.3, stall_out=0.3)
    assert result.vectors == 60
    assert result.mismatches == 0, result.first_mismatch
    if weights == "load":
        assert result.raw["weights"]["beats"] == len((design / "weights.bin").read_bytes())
    if theta is None:
        assert_step_intervals(design, result)


def test_generate_a_shipped_ternary_model(tmp_path, capsys):
    from hwgen.cli import main
    from hwgen.ref import run_int
    assert main(["generate", "digits_gru_t2s90e200", "--lanes", "3", "--sequences", "4",
                 "--out", str(tmp_path)]) == 0
    design = tmp_path / "digits_gru_t2s90e200_p3"
    assert "entries.hex" in capsys.readouterr().out
    manifest = json.loads((design / "manifest.json").read_text())
    t = manifest["ternary"]
    assert (t["result"], t["levels"], t["binary"], t["multipliers"]) == \
        ("digits_gru_t2s90e200", 2, False, 0)
    # far fewer stored words than dense level-words at 90 % pruning
    assert t["stored_words"] < 0.35 * t["dense_words"]
    assert manifest["cycles"]["stored_words_per_step"] < 0.35 * t["dense_words"]
    vectors = np.load(design / "vectors.npz")
    from hwgen.qat import shipped_ternary
    _, tm = shipped_ternary("digits_gru_t2s90e200")
    assert np.array_equal(vectors["outputs"], run_int(tm.qm, vectors["inputs"]))


@pytest.mark.parametrize("name,layers,lanes,sequences", [(CHARLM, 2, 8, 2),
                                                          (CHARLM_HEAD, 2, 4, 1),
                                                          (BIG_CHARLM, 1, 16, 1)])
def test_the_shipped_char_lm_on_the_ternary_datapath(name, layers, lanes, sequences):
    """The char LMs: two layers of 32 or one of 128, 32 one-hot inputs, the head on every
    step (with levels of its own in t2s80gh); bit-exact under stalls on a few test
    sequences, in their modelled cycles per step (the head's included)."""
    from hwgen.qat import shipped_ternary
    task, tm = shipped_ternary(name)
    qm = tm.qm
    assert (len(qm.layers), qm.input_size, qm.head_mode) == (layers, 32, "every")
    assert (qm.ternary_head is not None) == (name == CHARLM_HEAD)
    xq = qm.quantize_inputs(task.x_test[:sequences, :3])
    acc = Accelerator(qm, lanes)
    got, _ = run_accelerator(acc, xq, "every", 32, 0.3, 0.3, seed=1)
    assert got.shape == (sequences, 3, 32) and np.array_equal(got, run_int(qm, xq))
    model = ternary_cycle_model(acc.plan, acc.ternary_plan, qm.input_size, "every")
    assert measured_per_step(acc, xq, "every", 32) == model["model_per_step"]


def test_a_head_with_levels_shortens_the_char_lms_step():
    """The char LM's head runs every step: as 8 NAF digit levels of its 8-bit weights it
    does not shrink with pruning; with levels of its own (pruned with the layers) its pass
    visits fewer words, and the step takes fewer cycles than the 8-bit design's."""
    from hwgen.qat import shipped_ternary
    from hwgen.quant import QuantConfig
    from hwgen.rtl.cycles import cycle_model
    from hwgen.rtl.lane_balance import design_model
    from hwgen.rtl.plan import make_plan
    from hwgen.rtl.ternary_plan import make_ternary_plan
    task, naf = shipped_ternary(CHARLM)
    steps = {}
    for name, tm in ((CHARLM, naf), (CHARLM_HEAD, shipped_ternary(CHARLM_HEAD)[1])):
        qm = design_model(tm.qm, 4)[0]
        plan = make_plan(qm, 4)
        steps[name] = ternary_cycle_model(plan, make_ternary_plan(qm, plan), 32, "every")
    with_levels, digits = steps[CHARLM_HEAD], steps[CHARLM]
    assert with_levels["head_stored_words"] < 0.5 * digits["head_stored_words"]
    assert with_levels["head"] < 0.5 * digits["head"]
    qm8 = flow.quantize(task, QuantConfig(weight_bits=8, act_bits=8))
    eight_bit = cycle_model(make_plan(qm8, 4), 32, "every")["model_per_step"]
    assert with_levels["model_per_step"] < 0.9 * eight_bit < digits["model_per_step"]


@pytest.mark.parametrize("name,cell,lanes", [("digits_sru_t2s80", "sru", 5),
                                             ("digits_ligru_t2s80", "ligru", 3)])
def test_the_shipped_sru_and_ligru_on_the_ternary_datapath(name, cell, lanes):
    """The shipped SRU (two layers, no recurrent matrix, layer 1's identity highway) and
    LiGRU results: bit-exact under stalls on test sequences, in their modelled cycles."""
    from hwgen.qat import shipped_ternary
    task, tm = shipped_ternary(name)
    qm = tm.qm
    assert qm.layers[0].cell == cell and set(tm.pruned) == (
        {"l0.wx", "l1.wx"} if cell == "sru" else {"l0.wx", "l0.wh"})
    xq = qm.quantize_inputs(task.x_test[:2, :3])
    acc = Accelerator(qm, lanes)
    got, _ = run_accelerator(acc, xq, "last", 10, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq))
    model = ternary_cycle_model(acc.plan, acc.ternary_plan, qm.input_size, "last")
    assert measured_per_step(acc, xq, "last", 10) == model["per_step"]


@pytest.mark.parametrize("cell,lanes,units", [("gru", 8, 4), ("lstm", 4, 2)])
def test_element_wise_units_on_the_ternary_datapath(cell, lanes, units):
    """E element-wise units behind the level sums: bit-exact, the modelled cycles, and fewer
    of them than with one unit where ACTIVATE, not the combine beside it, sets the pace
    (one level, every scale bit in one cycle; each pass after the ACTIVATE before it: an
    early pass hides ACTIVATE's tail, which is what more units shorten)."""
    qm, xq = ternary_model(cell, 1, "last", 1, 0.5, hidden=16)
    acc = Accelerator(qm, lanes, units=units, scale_step=32, early_passes=False)
    got, _ = run_accelerator(acc, xq, "last", OUT, 0.3, 0.3, seed=units)
    assert np.array_equal(got, run_int(qm, xq))
    model = ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE, "last")
    assert measured_per_step(acc, xq, "last") == model["per_step"]
    one = Accelerator(qm, lanes, units=1, scale_step=32, early_passes=False)
    assert model["per_step"] < ternary_cycle_model(one.plan, one.ternary_plan, I_SIZE,
                                                   "last")["per_step"]


def test_activate_runs_beside_the_combine():
    """ACTIVATE takes each row group as the combiner makes its words: a layer's combine and
    ACTIVATE together take fewer cycles than one after the other. Where ACTIVATE is the
    slower (8 elements a row group, one unit, 6 terms of one cycle) the combiner's walk waits
    for a free bank; that design bit-exact under stalls in its modelled cycles."""
    from hwgen.rtl.cycles import activate_cycles, combine_activate_walk, ternary_pass_cycles
    for hidden, levels, step, lanes, waiting in ((24, 1, 32, 8, True),
                                                 (13, 2, None, 4, False)):
        qm, xq = ternary_model("gru", 1, "last", levels, 0.5, hidden=hidden, seed=3)
        acc = Accelerator(qm, lanes, units=1, scale_step=step)
        tp, lp = acc.ternary_plan, acc.plan.layers[0]
        cycles, waits = combine_activate_walk(tp, 0, lp, lanes, 1)
        combine = ternary_pass_cycles(tp.column_counts(0), tp.pass_digits(0))["combine"]
        assert max(combine, activate_cycles(lp, lanes, 1)) < cycles
        assert cycles < combine + activate_cycles(lp, lanes, 1)
        assert (waits > 0) is waiting
        if waiting:
            got, _ = run_accelerator(acc, xq, "last", OUT, 0.3, 0.3, seed=7)
            assert np.array_equal(got, run_int(qm, xq))
            model = ternary_cycle_model(acc.plan, tp, I_SIZE, "last")
            assert measured_per_step(acc, xq, "last") == model["per_step"]


@pytest.mark.parametrize("cell,lanes,hidden,sparsity,units", [
    ("gru", 1, 6, 0.5, 1), ("lstm", 3, 7, 0.0, 1), ("gru", 8, 16, 0.9, 1),
    ("ligru", 4, 9, 0.5, 2)])
def test_the_next_steps_pass_runs_under_activate(cell, lanes, hidden, sparsity, units):
    """A one-layer design whose head runs once a sequence begins the next step's pass as the
    combine ends: its input columns at once (loaded in the other bank), each recurrent
    column once ACTIVATE has written its h. Bit-exact under stalls; its step and a
    sequence's overhead as modelled; shorter than the phases one after the other."""
    qm, xq = ternary_model(cell, 1, "last", 2, sparsity, hidden=hidden, seed=lanes)
    acc = Accelerator(qm, lanes, units=units)
    assert acc.plan.overlap and acc.plan.early_passes and acc.plan.acc_bank_stride == 0
    got, _ = run_accelerator(acc, xq, "last", OUT, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq))
    model = ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE, "last")
    assert measured_per_step(acc, xq, "last") == model["per_step"]
    one, two = (run_accelerator(acc, xq[:n, :3], "last", OUT)[1] for n in (1, 2))
    assert two - one == 3 * model["per_step"] + model["per_sequence_overhead"]
    layer = model["layers"][0]
    assert model["per_step"] < I_SIZE + layer["matrix"] + layer["combine_activate"]


def test_which_ternary_designs_begin_a_pass_early():
    """The next step's pass begins early in a dense design: under the last ACTIVATE in a
    one-layer design whose head runs once a sequence (with more layers the next step's
    layer 0 reads nothing the last layer's ACTIVATE makes: not built), as the head's
    combine ends where it runs every step; a delta pass adds into the stored words. A
    layer's pass begins under the ACTIVATE of the layer before, and the head's under the
    last's where it runs every step."""
    from hwgen.rtl.plan import make_plan
    for layers, head_mode, theta, next_step, early in (
            (1, "last", None, True, True), (2, "last", None, False, True),
            (1, "every", None, True, True), (2, "every", None, True, True),
            (1, "last", 2, False, False), (2, "every", 2, False, True)):
        qm, _ = ternary_model("gru", layers, head_mode, 2, 0.5)
        delta = None if theta is None else [(theta, theta)] * layers
        plan = make_plan(qm, 4, delta)
        assert (plan.overlap, plan.early_passes) == (next_step, early)
    qm, _ = ternary_model("sru", 1, "last", 2, 0.5)   # no recurrent columns to wait for
    assert not make_plan(qm, 4).overlap


@pytest.mark.parametrize("cell,layers,head_mode,lanes,theta", [
    ("gru", 2, "last", 4, None), ("lstm", 1, "every", 3, None), ("gru", 2, "every", 8, 2),
    ("sru", 2, "last", 3, None)])
def test_a_pass_begins_under_the_activate_before_it(cell, layers, head_mode, lanes, theta):
    """A second layer's pass (its input columns as the first layer's ACTIVATE writes them)
    and the head's on every step begin as the combine before them ends: bit-exact under
    stalls, dense and delta, in the modelled cycles, fewer than the phases one after the
    other (each pass after its ACTIVATE)."""
    from hwgen.rtl.cycles import ternary_pass_cycles
    from hwgen.rtl.head_output import output_cycles
    qm, xq = ternary_model(cell, layers, head_mode, 2, 0.5, hidden=9, seed=lanes)
    delta = None if theta is None else [(theta, theta)] * layers
    acc = Accelerator(qm, lanes, delta=delta)
    assert acc.plan.early_passes
    got, _ = run_accelerator(acc, xq, head_mode, OUT, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))
    tp = acc.ternary_plan
    model = ternary_cycle_model(acc.plan, tp, I_SIZE, head_mode)
    if theta is None:
        assert measured_per_step(acc, xq, head_mode) == model["model_per_step"]
    else:   # the first step fires every column: the dense model
        assert run_accelerator(acc, xq[:1, :1], head_mode, OUT)[1] == (
            model["model_per_step"] + model["per_sequence_overhead"])
    one_after_another = I_SIZE + sum(
        ternary_pass_cycles(tp.column_counts(k), tp.pass_digits(k))["matrix"]
        + layer["combine_activate"] for k, layer in enumerate(model["layers"]))
    if head_mode == "every":
        hp = acc.plan.head
        head = ternary_pass_cycles(tp.column_counts(layers), tp.pass_digits(layers))
        one_after_another += (head["matrix"] + head["combine"]
                              + output_cycles(hp.groups, hp.out_size, lanes))
    assert model["model_per_step"] < one_after_another


def test_bench_counts_block_rams_per_memory(tmp_path, monkeypatch):
    """`bench/ternary_hw.py --synth` says what uses the iCE40's EBRs: a netlist's
    SB_RAM40_4K cells per memory, the lanes' level-sum memories together."""
    import sys
    from pathlib import Path
    bench = Path(__file__).resolve().parent.parent / "bench"
    monkeypatch.syspath_prepend(str(bench))
    sys.modules.pop("ternary_hw", None)
    import ternary_hw
    names = ["combiner.acc_mem.0.0", "combiner.acc_mem.0.10", "level_sums.s_mem0.0.0",
             "level_sums.s_mem11.0.0", "schedule.rom.1.0", "v_mem.0.0"]
    cells = {n: {"type": "SB_RAM40_4K"} for n in names}
    cells["combiner.run_SB_LUT4_O"] = {"type": "SB_LUT4"}
    netlist = tmp_path / "netlist.json"
    netlist.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    assert ternary_hw.block_ram_use(netlist) == {"combiner.acc_mem": 2, "level_sums.s_mem*": 2,
                                                 "schedule.rom": 1, "v_mem": 1}


# ---- hidden units reordered for the lanes (`lane_balance`)
@pytest.mark.parametrize("cell,layers,head_mode,lanes,sparsity,theta", [
    ("gru", 2, "last", 3, 0.8, None), ("lstm", 1, "every", 4, 0.9, None),
    ("ligru", 1, "last", 3, 0.5, 2), ("sru", 2, "last", 4, 0.9, None)])
def test_balanced_lanes_keep_every_output(cell, layers, head_mode, lanes, sparsity, theta):
    """Each layer's units reordered: the reference's outputs unchanged bit for bit, no
    layer storing more words, and the design bit-exact under stalls in its modelled cycles
    (the GRU's head has levels: their columns move with the units)."""
    from hwgen.rtl.lane_balance import balance, stored_words, unit_digits
    qm, xq = ternary_model(cell, layers, head_mode, 2, sparsity, hidden=13, seed=lanes,
                           head=cell == "gru")
    balanced = balance(qm, lanes)
    delta = None if theta is None else [(theta, theta)] * layers
    assert np.array_equal(run_int(balanced, xq, delta=delta), run_int(qm, xq, delta=delta))
    same_order = np.arange(13)
    for k in range(layers):
        assert (stored_words(unit_digits(balanced, k), same_order, lanes)
                <= stored_words(unit_digits(qm, k), same_order, lanes))
    acc = Accelerator(qm, lanes, delta=delta, balance_lanes=True)
    got, _ = run_accelerator(acc, xq, head_mode, OUT, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))
    if theta is None:
        model = ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE, head_mode)
        assert measured_per_step(acc, xq, head_mode) == model["model_per_step"]


def test_the_models_order_is_kept_when_asked():
    """balance_lanes=False: the design runs the caller's model as it is (the default
    reorders it), bit-exact under stalls in its modelled cycles."""
    qm, xq = ternary_model("gru", 1, "last", 2, 0.8, hidden=13, seed=5)
    assert Accelerator(qm, 4).qm is not qm
    acc = Accelerator(qm, 4, balance_lanes=False)
    assert acc.qm is qm and not acc.balanced_lanes
    got, _ = run_accelerator(acc, xq, "last", OUT, 0.3, 0.3, seed=4)
    assert np.array_equal(got, run_int(qm, xq))
    model = ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE, "last")
    assert measured_per_step(acc, xq, "last") == model["per_step"]


def test_one_rule_says_which_model_a_design_runs():
    """`lane_balance.design_model`, which the generator and the bench both use: a ternary
    model balanced unless told False, a model without levels as it is, True refused for it."""
    from hwgen.rtl.lane_balance import balance, design_model
    from hwgen.rtl.plan import PlanError
    qm, _ = ternary_model("gru", 1, "last", 2, 0.8, hidden=13, seed=6)
    for flag in (None, True):
        run, balanced = design_model(qm, 4, flag)
        assert balanced and run.ternary[0]["h"].planes.tobytes() == (
            balance(qm, 4).ternary[0]["h"].planes.tobytes())
        assert run.ternary[0]["h"].planes.tobytes() != qm.ternary[0]["h"].planes.tobytes()
    assert design_model(qm, 4, False) == (qm, False)
    plain = dataclasses.replace(qm, ternary=None)
    assert design_model(plain, 4) == (plain, False)
    assert design_model(plain, 4, False) == (plain, False)
    with pytest.raises(PlanError, match="balance_lanes is for a ternary model"):
        design_model(plain, 4, True)


def test_balanced_lanes_store_fewer_words_of_a_shipped_model(tmp_path, capsys):
    """digits_gru_t2s90e200 at 8 lanes: 173 stored words a step unbalanced, fewer than 140
    balanced; `hwgen generate` balances a ternary model's lanes unless told
    `--no-balance-lanes`, says which in the manifest, and refuses either flag for a model
    without ternary levels in one line."""
    from hwgen.cli import main
    from hwgen.qat import shipped_ternary
    from hwgen.rtl.lane_balance import balance, stored_words, unit_digits
    _, tm = shipped_ternary("digits_gru_t2s90e200")
    order = np.arange(32)
    assert stored_words(unit_digits(tm.qm, 0), order, 8) == 173
    assert stored_words(unit_digits(balance(tm.qm, 8), 0), order, 8) < 140
    for flags, balanced in (([], True), (["--no-balance-lanes"], False)):
        assert main(["generate", "digits_gru_t2s90e200", "--lanes", "8", "--sequences", "2",
                     *flags, "--out", str(tmp_path)]) == 0
        manifest = json.loads((tmp_path / "digits_gru_t2s90e200_p8" / "manifest.json")
                              .read_text())
        assert manifest["ternary"]["balanced_lanes"] is balanced
        words = manifest["cycles"]["stored_words_per_step"]
        assert words < 140 if balanced else words == 173
    capsys.readouterr()
    for flag in ("--balance-lanes", "--no-balance-lanes"):
        assert main(["generate", "digits_gru", flag, "--out", str(tmp_path)]) == 2
        assert capsys.readouterr().err == (f"hwgen: error: {flag} is for a shipped ternary "
                                           "model (the multiplier-free datapath)\n")


@pytest.mark.parametrize("cell,layers,lanes,hidden,out", [
    ("gru", 2, 4, 9, OUT), ("lstm", 1, 3, 7, OUT), ("sru", 1, 3, 7, OUT),
    ("gru", 1, 1, 2, 24)])   # the outputs take longer than the next step's pass
def test_the_next_steps_pass_runs_while_the_outputs_leave(cell, layers, lanes, hidden, out):
    """A head on every step: the next step's pass begins as the head's combine ends (its
    input loaded in the other bank, the h it reads made), beside the outputs, also across
    sequences (the next step a sequence's first: `fresh` set as it begins). Bit-exact under
    stalls; the step as modelled (its combine after both the pass and the outputs) and no
    cycle between sequences; fewer cycles than after the outputs."""
    from hwgen.rtl.plan import make_plan
    from hwgen.rtl.ternary_plan import make_ternary_plan
    qm, xq = ternary_model(cell, layers, "every", 2, 0.5, hidden=hidden, seed=lanes, out=out)
    acc = Accelerator(qm, lanes)
    assert acc.plan.overlap and acc.plan.acc_bank_stride == 0
    got, _ = run_accelerator(acc, xq, "every", out, 0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, xq))
    model = ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE, "every")
    assert model["per_sequence_overhead"] == 0
    two, three, six = (run_accelerator(acc, xq[:n, :t], "every", out)[1]
                       for n, t in ((1, 2), (1, 3), (2, 3)))
    assert three - two == model["model_per_step"]
    assert six - three == 3 * model["model_per_step"]
    late = make_plan(acc.qm, lanes, early_passes=False)
    assert model["model_per_step"] < ternary_cycle_model(
        late, make_ternary_plan(acc.qm, late), I_SIZE, "every")["model_per_step"]


def test_passes_one_after_another_when_asked(tmp_path, capsys):
    """`early_passes=False` (`hwgen generate --no-early-passes`): each pass begins after the
    ACTIVATE before it and the next step after the last (the designs before early passes,
    for a device where their few dozen cells do not fit); bit-exact under stalls in its
    modelled cycles, which the early passes cut. The flag is refused for a model without
    ternary levels, in one line."""
    from hwgen.cli import main
    qm, xq = ternary_model("gru", 2, "every", 2, 0.5, hidden=9, seed=4)
    late = Accelerator(qm, 4, early_passes=False)
    assert not late.plan.early_passes and not late.plan.overlap
    got, _ = run_accelerator(late, xq, "every", OUT, 0.3, 0.3, seed=4)
    assert np.array_equal(got, run_int(qm, xq))
    model = ternary_cycle_model(late.plan, late.ternary_plan, I_SIZE, "every")
    assert measured_per_step(late, xq, "every") == model["model_per_step"]
    from hwgen.rtl.plan import make_plan
    from hwgen.rtl.ternary_plan import make_ternary_plan
    early = make_plan(late.qm, 4)    # (the model with the design's lanes balanced)
    assert ternary_cycle_model(early, make_ternary_plan(late.qm, early), I_SIZE,
                               "every")["model_per_step"] < model["model_per_step"]
    for flags, begun in (([], True), (["--no-early-passes"], False)):
        assert main(["generate", "digits_gru_t2s90e200", "--lanes", "8", "--sequences", "2",
                     *flags, "--out", str(tmp_path)]) == 0
        manifest = json.loads((tmp_path / "digits_gru_t2s90e200_p8" / "manifest.json")
                              .read_text())
        assert manifest["ternary"]["early_passes"] is begun
        assert manifest["overlap"] is begun
    capsys.readouterr()
    assert main(["generate", "digits_gru", "--no-early-passes", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("hwgen: error: --no-early-passes is for a shipped "
                                       "ternary model (the multiplier-free datapath)\n")


# ---- entries loaded at run time (weights="load": the UP5K's SPRAM)
@pytest.mark.parametrize("cell,layers,head_mode,lanes,hidden,theta", [
    ("gru", 1, "last", 3, 7, None), ("lstm", 2, "every", 8, 7, 2),
    ("gru", 1, "last", 3, 19, None)])   # more entries than a ROM bank holds
def test_loaded_entries_bit_exact_under_stalls(cell, layers, head_mode, lanes, hidden, theta):
    """The entry words through the `weights` stream under stalls, the inputs offered from
    the first cycle (the harness fails if one is taken before the image's last byte):
    bit-exact, and once loaded a step takes the ROM design's modelled cycles."""
    from hwgen.rtl.ternary_plan import entry_image
    qm, xq = ternary_model(cell, layers, head_mode, 2, 0.5, hidden=hidden, seed=lanes)
    delta = None if theta is None else [(theta, theta)] * layers
    acc = Accelerator(qm, lanes, delta=delta, weights="load")
    image = acc.load_image()
    assert image == entry_image(acc.ternary_plan)
    got, _ = run_accelerator(acc, xq, head_mode, OUT, 0.3, 0.3, seed=lanes, weights=image,
                             stall_weights=0.3)
    assert np.array_equal(got, run_int(qm, xq, delta=delta))
    if theta is None:
        _, c2 = run_accelerator(acc, xq[:1, :2], head_mode, OUT, weights=image)
        _, c3 = run_accelerator(acc, xq[:1, :3], head_mode, OUT, weights=image)
        model = ternary_cycle_model(acc.plan, acc.ternary_plan, I_SIZE, head_mode)
        assert c3 - c2 == model["model_per_step"]
        _, rom2 = run_accelerator(Accelerator(qm, lanes), xq[:1, :2], head_mode, OUT)
        assert c2 - rom2 == len(image)   # a byte a cycle: the last one writes the last word


def test_entry_image_holds_the_entry_words():
    """The image is the entry words in address order, each in whole bytes, lowest first; a
    wrong byte in it shows in the outputs (the check sees what is loaded)."""
    from hwgen.rtl.ternary_plan import entry_width, entry_words
    qm, xq = ternary_model("gru", 1, "last", 2, 0.5)
    acc = Accelerator(qm, 3, weights="load")
    tp = acc.ternary_plan
    words, width = entry_words(tp), entry_width(tp)
    beats = -(-width // 8)
    image = acc.load_image()
    assert width == 3 * (1 + tp.local_bits) and len(image) == beats * len(words)
    assert [int.from_bytes(image[k * beats:(k + 1) * beats], "little")
            for k in range(len(words))] == words
    wrong = bytearray(image)
    for k in range(len(words)):
        wrong[k * beats] ^= 1   # lane 0's sign in every entry word
    got, _ = run_accelerator(acc, xq, "last", OUT, weights=bytes(wrong))
    assert not np.array_equal(got, run_int(qm, xq))


def test_generate_a_shipped_ternary_model_with_loaded_entries(tmp_path, capsys):
    """`hwgen generate ... --weights load` of a shipped ternary result: weights.bin is the
    entry image, the manifest names the stream and the loaded memory, the Verilog holds no
    contents for it; pointers, scales and biases stay in ROM."""
    from hwgen.cli import main
    from hwgen.design_folder import LOADED_ATTR
    from hwgen.qat import shipped_ternary
    from hwgen.rtl.lane_balance import balance
    from hwgen.rtl.plan import make_plan
    from hwgen.rtl.ternary_plan import entry_image, make_ternary_plan
    assert main(["generate", "digits_gru_t2s90e200", "--lanes", "3", "--sequences", "2",
                 "--weights", "load", "--out", str(tmp_path)]) == 0
    assert "weights.bin" in capsys.readouterr().out
    design = tmp_path / "digits_gru_t2s90e200_p3"
    manifest = json.loads((design / "manifest.json").read_text())
    image = (design / "weights.bin").read_bytes()
    _, tm = shipped_ternary("digits_gru_t2s90e200")
    qm = balance(tm.qm, 3)     # the model the design runs: its lanes balanced
    assert image == entry_image(make_ternary_plan(qm, make_plan(qm, 3)))
    assert manifest["interface"]["weights"]["beats"] == len(image)
    assert manifest["memories"]["entries"]["storage"] == "load"
    verilog = next(design.glob("*.v")).read_text()
    assert verilog.count(LOADED_ATTR) == 1 and "entries" in manifest["memories"]


