"""The datapath components alone, in Amaranth's simulator, against expectations computed here.

ColumnEncoder, MacIssuer, ActivateEngine and HeadOutput each run on their own: their
memories are read-port models (`stream_helpers.add_read_port`) with random contents, their
streams are driven with random gaps (`stream_put` / `stream_get`), and every clock edge is
traced so that cycle counts can be checked against the cycle model's constants. The
expected values come from the plan's layout rules and `hwgen.fixed`, not from the RTL.
"""
from __future__ import annotations

from functools import lru_cache
import math
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Module, Shape, Signal, Value, signed
from amaranth.lib import fifo
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from conftest import make_model
from stream_helpers import add_read_port, add_trace, stream_get, stream_put
from hwgen.cells import get_cell
from hwgen.fixed import requantize
from hwgen.frontend import from_torch
from hwgen.quant import QuantConfig, quantize_model
from hwgen.rtl.activate import (GATHER_CAPTURE, PICK_LANES_UP_TO, ActivateEngine, activate_layers,
                                issue_cycles, shifts_banks, start_delay)
from hwgen.rtl.head_output import HeadOutput, output_cycles
from hwgen.rtl.mac_array import issue_layout
from hwgen.rtl.matrix import (ENCODER_LATENCY, ISSUER_LATENCY, ColumnEncoder, MacIssuer,
                              passes_of)
from hwgen.rtl.plan import make_plan

I, H = 5, 7
HEAD = "head"


@lru_cache(maxsize=None)
def qmodel(cell: str, layers: int = 2, out: int = 5):
    """A small random quantized model (odd sizes: I=5, H=7)."""
    ir = from_torch(make_model(cell, input_size=I, hidden=H, out=out, layers=layers))
    x = np.random.default_rng(7).uniform(-1.5, 1.5, (4, 4, I))
    return quantize_model(ir, x, QuantConfig(weight_bits=8, act_bits=8))


def cell_sides(cell: str):
    """Blocks visited by input and by recurrent columns, from the cell's block list."""
    blocks = get_cell(cell).blocks
    return (tuple(n for n, b in enumerate(blocks) if "x" in b.sides),
            tuple(n for n, b in enumerate(blocks) if "h" in b.sides))


def pass_facts(plan, qm, k):
    """What the tests expect of pass k (a layer index or HEAD), from the plan's layout."""
    if k == HEAD:
        hp = plan.head
        return SimpleNamespace(
            index=len(plan.layers), cols=hp.in_size, x_cols=0, gpg=hp.groups, gpc=hp.groups,
            w_base=hp.w_base, b_base=hp.b_base, acc_base=hp.acc_base, x_addr=None,
            h_addr=hp.h_addr, hat_addr=None, bx=(), bh=(0,), recurrent=False, theta=None,
            shift_x=0, shift_h=0)
    lp, ql = plan.layers[k], qm.layers[k]
    bx, bh = cell_sides(lp.cell)
    cols = lp.input_size + (lp.hidden_size if bh else 0)
    return SimpleNamespace(
        index=k, cols=cols, x_cols=lp.input_size, gpg=math.ceil(lp.hidden_size / plan.lanes),
        gpc=len(bx) * math.ceil(lp.hidden_size / plan.lanes), w_base=lp.w_base,
        b_base=lp.b_base, acc_base=lp.acc_base, x_addr=lp.x_addr, h_addr=lp.h_addr,
        hat_addr=lp.hat_addr, bx=bx, bh=bh, recurrent=True,
        theta=None if plan.delta is None else plan.delta[k],
        shift_x=ql.shift_x, shift_h=ql.shift_h)


def signed_values(rng, width, shape):
    return rng.integers(-(1 << (width - 1)), 1 << (width - 1), shape)


def spans(trace, key="start"):
    """Edge ranges [start edge, next start edge) of the runs in a trace."""
    starts = [n for n, t in enumerate(trace) if t[key]]
    return [range(s, e) for s, e in zip(starts, starts[1:] + [len(trace)])]


def simulator(dut):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    return sim


# ------------------------------------------------------------------------------- helpers

def test_read_port_model_matches_a_memory():
    """`add_read_port` answers like a real read port (latency 1) and one registered after
    it (latency 2), for addresses that change every cycle or stay."""
    rng = np.random.default_rng(3)
    contents = rng.integers(-100, 100, 13).tolist()
    m = Module()
    m.submodules.mem = mem = Memory(shape=signed(8), depth=13, init=contents)
    port = mem.read_port()
    addr, registered = Signal(range(13)), Signal(signed(8))
    model1, model2 = Signal(signed(8)), Signal(signed(8))
    m.d.comb += port.addr.eq(addr)
    m.d.sync += registered.eq(port.data)
    sim = simulator(m)
    add_read_port(sim, addr, model1, contents, latency=1)
    add_read_port(sim, addr, model2, contents, latency=2)
    trace = add_trace(sim, mem=port.data, reg=registered, model1=model1, model2=model2)

    async def testbench(ctx):
        for a in list(rng.integers(0, 13, 30)) + [4] * 3 + list(rng.integers(0, 13, 10)):
            ctx.set(addr, int(a))
            await ctx.tick()

    sim.add_testbench(testbench)
    sim.run()
    assert len({t["mem"] for t in trace}) > 5
    assert [t["model1"] for t in trace] == [t["mem"] for t in trace]
    assert [t["model2"] for t in trace] == [t["reg"] for t in trace]


@pytest.mark.parametrize("put_stall,get_stall", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.7),
                                                 (0.6, 0.6)])
def test_stream_helpers_through_a_fifo(put_stall, get_stall):
    """Everything put comes out once, in order, whatever the gaps on either side."""
    words = list(range(40, 80))
    dut = fifo.SyncFIFO(width=8, depth=4)
    sim = simulator(dut)
    got = []

    async def producer(ctx):
        await stream_put(ctx, dut.w_stream, words, stall=put_stall, seed=1)

    async def consumer(ctx):
        got.extend(await stream_get(ctx, dut.r_stream, len(words), stall=get_stall, seed=2))

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == words


# ----------------------------------------------------------------------------- ColumnEncoder

def encoder_expectation(f, vec, hat, fresh):
    """Fired columns and last-fired writes of one pass: every column for a dense pass
    (delta = value), else those with |value - last| >= max(theta, 1), or all when fresh."""
    fired, writes = [], []
    for j in range(f.cols):
        is_h = j >= f.x_cols
        value = int(vec[f.h_addr + j - f.x_cols] if is_h else vec[f.x_addr + j])
        if is_h and fresh and f.recurrent:
            value = 0
        last = 0 if (f.theta is None or fresh) else int(hat[f.hat_addr + j])
        change = value - last
        if f.theta is not None:
            threshold = max(f.theta[1] if is_h else f.theta[0], 1)
            if not (fresh or abs(change) >= threshold):
                continue
            writes.append((f.hat_addr + j, value))
        fired.append({"w_addr": f.w_base + j * f.gpc, "col": j, "is_h": int(is_h),
                      "delta": change})
    return fired, writes


def delta_contents(plan, facts, vec, rng):
    """Last-fired values near the columns' values: changes of 0, of the threshold and one
    less, and larger ones, so that some columns fire and some do not."""
    hat = signed_values(rng, plan.value_width, plan.hat_depth)
    lo, hi = -(1 << (plan.value_width - 1)), (1 << (plan.value_width - 1)) - 1
    for f in facts:
        if f.theta is None:
            continue
        for j in range(f.cols):
            is_h = j >= f.x_cols
            value = vec[f.h_addr + j - f.x_cols] if is_h else vec[f.x_addr + j]
            t = max(f.theta[1] if is_h else f.theta[0], 1)
            offset = rng.choice([0, t - 1, 1 - t, t, -t, 2 * t + 1, -2 * t - 1])
            hat[f.hat_addr + j] = np.clip(value + offset, lo, hi)
    return hat


def run_encoder(plan, qm, sequence, fresh, stall, seed):
    """Run passes `sequence` through one ColumnEncoder; returns per pass (facts, expected
    columns, expected writes, columns taken, trace span) and the trace."""
    rng = np.random.default_rng(seed)
    passes = passes_of(plan, qm)
    facts = [pass_facts(plan, qm, k) for k in sequence]
    vec = signed_values(rng, plan.value_width, plan.vector_depth)
    hat = delta_contents(plan, facts, vec, rng)
    expected = [encoder_expectation(f, vec, hat, fresh) for f in facts]
    dut = ColumnEncoder(plan, passes)
    sim = simulator(dut)
    add_read_port(sim, dut.value_addr, dut.value, vec)
    add_read_port(sim, dut.last_addr, dut.last, hat)
    trace = add_trace(sim, start=dut.start, done=dut.done,
                      valid=dut.columns.valid, ready=dut.columns.ready, write=dut.last_write)
    got = []

    async def testbench(ctx):
        ctx.set(dut.fresh, fresh)
        for f, (fired, _) in zip(facts, expected):
            ctx.set(dut.sel, f.index)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            got.append(await stream_get(ctx, dut.columns, len(fired), stall=stall, rng=rng,
                                        timeout=300))
            ctx.set(dut.columns.ready, 1)     # anything more would show now
            for _ in range(40):
                _, _, done = await ctx.tick().sample(dut.done)
                if done:
                    break
            await ctx.tick().repeat(4)
            ctx.set(dut.columns.ready, 0)
            await ctx.tick()

    sim.add_testbench(testbench)
    sim.run()
    return facts, expected, got, trace


@pytest.mark.parametrize("cell,delta,sequence,fresh,stall", [
    ("lstm", None, [0, 1, HEAD], 0, 0.0),
    ("lstm", None, [1, 0], 1, 0.5),
    ("gru", None, [HEAD, 1], 1, 0.0),     # the head reads h even on a fresh step
    ("sru", None, [0, 1], 0, 0.85),       # no recurrent columns
    ("ligru", None, [1], 1, 0.3),
    ("gru", [(3, 5), (2, 4)], [0, 1, HEAD], 0, 0.0),
    ("gru", [(0, 0), (0, 0)], [1, 0], 0, 0.6),   # theta 0 fires on |change| >= 1
    ("lstm", [(2, 4), (5, 1)], [0, 1, HEAD], 1, 0.3),
    ("lstm", [(2, 4), (5, 1)], [1, HEAD], 0, 0.9),
    ("sru", [(4, 1), (1, 3)], [1, 0], 0, 0.0),
])
def test_column_encoder(cell, delta, sequence, fresh, stall):
    qm = qmodel(cell)
    plan = make_plan(qm, 3, delta)
    facts, expected, got, trace = run_encoder(plan, qm, sequence, fresh, stall,
                                              seed=len(sequence) + int(stall * 10))
    assert len(spans(trace)) == len(sequence)
    for f, (fired, writes), taken, span in zip(facts, expected, got, spans(trace)):
        if f.theta is not None and not fresh:          # some fire and some do not
            assert 0 < len(fired) < f.cols
        assert taken == fired
        start = span[0]
        edges = [n for n in span if trace[n]["valid"] and trace[n]["ready"]]
        assert len(edges) == len(fired)                # nothing lost, nothing duplicated
        got_writes = [(trace[n]["write"]["addr"], trace[n]["write"]["data"])
                      for n in span if trace[n]["write"]["en"]]
        assert got_writes == writes
        # done: low until the last column has left the queue, then high until restarted
        done = [n for n in span[1:] if trace[n]["done"]]
        assert done, "done never rose"
        first_done = done[0]
        last_out = edges[-1] if edges else start
        assert first_done > last_out
        assert done == list(range(first_done, span[-1] + 1))
        if stall == 0:
            # a column read at edge start+1+j reaches the queue's head ENCODER_LATENCY
            # edges later and leaves at once; done follows the last read or departure
            assert edges == [start + 1 + ENCODER_LATENCY + c["col"] for c in fired]
            assert first_done == max(last_out + 1, start + ENCODER_LATENCY + f.cols)
        else:
            assert first_done >= max(last_out + 1, start + ENCODER_LATENCY + f.cols)


# ---------------------------------------------------------------------------- MacIssuer

def issuer_expectation(f, columns, fresh, shifts):
    """The issued words of fired `columns`: each column's groups in order; accumulator word
    = the block its side visits at that group (GRU h columns skip n_x), the bias where the
    pass first touches the word (dense passes, and delta passes on a fresh step)."""
    first_col = {}                    # block -> first column (in order) whose side feeds it
    for j in range(f.cols):
        for block in (f.bh if j >= f.x_cols else f.bx):
            first_col.setdefault(block, j)
    with_bias = f.theta is None or fresh
    words = []
    for c in columns:
        blocks = f.bh if c["is_h"] else f.bx
        for q in range(f.gpc):
            block = blocks[q // f.gpg]
            offset = block * f.gpg + q % f.gpg
            words.append({"w_addr": c["w_addr"] + q, "acc_addr": f.acc_base + offset,
                          "b_addr": f.b_base + offset,
                          "bias": int(with_bias and first_col[block] == c["col"]),
                          "delta": c["delta"],
                          "shift": shifts.index(f.shift_h if c["is_h"] else f.shift_x)})
    return words


@pytest.mark.parametrize("cell,delta,k,fresh,stall,lanes", [
    ("gru", None, 0, 0, 0.0, 3),
    ("gru", None, 1, 1, 0.4, 3),
    ("lstm", None, 1, 0, 0.0, 3),
    ("lstm", None, HEAD, 0, 0.5, 3),
    ("sru", None, 1, 0, 0.0, 3),
    ("ligru", None, 0, 1, 0.3, 3),
    ("gru", [(2, 3), (1, 1)], 1, 0, 0.0, 3),
    ("gru", [(2, 3), (1, 1)], 0, 1, 0.3, 3),
    ("lstm", [(2, 3), (1, 1)], 0, 0, 0.6, 3),
    ("lstm", None, HEAD, 0, 0.0, 8),      # one word a column: every column its last word
    ("gru", None, HEAD, 1, 0.5, 8),
])
def test_mac_issuer(cell, delta, k, fresh, stall, lanes):
    rng = np.random.default_rng(11)
    qm = qmodel(cell)
    plan = make_plan(qm, lanes, delta)
    passes = passes_of(plan, qm)
    f = pass_facts(plan, qm, k)
    shifts = sorted({0} | {p.shift_x for p in passes} | {p.shift_h for p in passes})
    layout = issue_layout(len(plan.weight_words) + 1, plan.acc_depth, len(plan.bias_words),
                          plan.value_width + 1, len(shifts))
    cols = range(f.cols)
    if f.theta is not None and not fresh:              # a delta pass fires some columns
        cols = sorted(rng.choice(f.cols, size=f.cols // 2, replace=False))
    vmax = 1 << plan.value_width
    columns = [{"w_addr": f.w_base + j * f.gpc, "col": int(j), "is_h": int(j >= f.x_cols),
                "delta": int(rng.integers(-vmax + 1, vmax))} for j in cols]
    expected = issuer_expectation(f, columns, fresh, shifts)
    assert any(w["bias"] for w in expected) == (f.theta is None or bool(fresh))

    dut = MacIssuer(plan, passes, layout)
    sim = simulator(dut)
    trace = add_trace(sim, valid=dut.issue.valid, issue=dut.issue.payload, busy=dut.busy,
                      cvalid=dut.columns.valid, cready=dut.columns.ready)

    async def testbench(ctx):
        ctx.set(dut.sel, f.index)
        ctx.set(dut.fresh, fresh)
        await stream_put(ctx, dut.columns, columns, stall=stall, rng=rng, timeout=100)
        await ctx.tick().repeat(f.gpc + 4)

    sim.add_testbench(testbench)
    sim.run()
    issued = [n for n, t in enumerate(trace) if t["valid"]]
    assert [trace[n]["issue"] for n in issued] == expected
    # each column's words follow its departure from the queue ISSUER_LATENCY edges later,
    # one a cycle; busy exactly while words are issued, low at the end
    taken = [n for n, t in enumerate(trace) if t["cvalid"] and t["cready"]]
    assert len(taken) == len(columns)
    assert issued == [t + ISSUER_LATENCY + q for t in taken for q in range(f.gpc)]
    assert [n for n, t in enumerate(trace) if t["busy"]] == issued
    assert not trace[-1]["busy"]
    if stall == 0:                                      # back to back: no gap cycle
        assert issued == list(range(issued[0], issued[0] + len(columns) * f.gpc))


# ------------------------------------------------------------------------ ActivateEngine

def synthetic_layers(shapes, lanes):
    """ActivateEngine layers of (hidden, n_blocks), packed in the memories one after another."""
    layers, acc = [], 0
    h = c = ew = 0
    for hidden, n_blocks in shapes:
        gpg = math.ceil(hidden / lanes)
        layers.append(SimpleNamespace(hidden=hidden, gpg=gpg, n_blocks=n_blocks, acc_base=acc,
                                      h_addr=3 + h, c_addr=1 + c, ew_addr=2 + ew,
                                      acc_bank_stride=0))
        acc, h, c, ew = acc + n_blocks * gpg, h + hidden, c + hidden, ew + hidden
    return layers


def run_activate(layers, lanes, sequence, acc_width, seed, units=1, banks=None):
    """Run layers `sequence` through one ActivateEngine over random accumulator words
    (each from its accumulator bank in `banks`: 0 by default)."""
    rng = np.random.default_rng(seed)
    banks = banks or [0] * len(sequence)
    acc_depth = max(lay.acc_base + lay.n_blocks * lay.gpg + lay.acc_bank_stride
                    for lay in layers) + 2
    acc = signed_values(rng, acc_width, (acc_depth, lanes))
    vector_depth = max(lay.h_addr + lay.hidden for lay in layers) + 1
    cell_depth = max((lay.c_addr or 0) + lay.hidden for lay in layers) + 1
    ew_depth = max((lay.ew_addr or 0) + lay.hidden for lay in layers) + 1
    dut = ActivateEngine(layers, lanes, acc_width, acc_depth, vector_depth, cell_depth,
                         ew_depth, units=units)
    sim = simulator(dut)
    add_read_port(sim, dut.acc_addr, dut.acc_word, acc, latency=2)
    trace = add_trace(sim, start=dut.start, done=dut.done, valid=dut.element.valid,
                      element=dut.element.payload, h_addr=dut.h_addr, c_addr=dut.c_addr,
                      ew_addr=dut.ew_addr)

    async def testbench(ctx):
        for k, bank in zip(sequence, banks):
            ctx.set(dut.sel, k)
            ctx.set(dut.bank, bank)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(20 * layers[k].hidden + 50):
                _, _, done = await ctx.tick().sample(dut.done)
                if done:
                    break
            await ctx.tick().repeat(3)        # the engine stops itself on done

    sim.add_testbench(testbench)
    sim.run()
    return acc, trace


def check_activate(layers, lanes, sequence, acc, trace, units=1, banks=None):
    """Each beat carries `units` consecutive elements (the last beat of a row group may
    run past H: those elements are not checked)."""
    assert len(spans(trace)) == len(sequence)
    for k, span, bank in zip(sequence, spans(trace), banks or [0] * len(sequence)):
        lay = layers[k]
        base = lay.acc_base + bank * lay.acc_bank_stride
        beats = [(n, trace[n]["element"]) for n in span if trace[n]["valid"]]
        starts = [t for g in range(lay.gpg)
                  for t in range(g * lanes, min((g + 1) * lanes, lay.hidden), units)]
        assert [e["tag"] for _, e in beats] == starts
        assert all(e["layer"] == k for _, e in beats)
        for n, e in beats:
            for j in range(units):
                tag = e["tag"] + j
                if tag >= lay.hidden:
                    continue
                want = [int(acc[base + q * lay.gpg + tag // lanes][tag % lanes])
                        for q in range(lay.n_blocks)]
                gates = e["gates"][j] if units > 1 else e["gates"]  # one unit: no beat array
                assert gates[:lay.n_blocks] == want, f"layer {k} element {tag}"
            # the elements' state and vector words were addressed as they were issued
            issued, tag = trace[n - 1], e["tag"]
            assert issued["h_addr"] == lay.h_addr + tag
            if lay.c_addr is not None:
                assert issued["c_addr"] == lay.c_addr + tag
            if lay.ew_addr is not None:
                assert issued["ew_addr"] == lay.ew_addr + tag
        if lanes // units >= lay.n_blocks + GATHER_CAPTURE:
            # a bank is refilled (its reads, the last capture) while the other is issued:
            # one beat a cycle throughout
            edges = [n for n, _ in beats]
            assert edges == list(range(edges[0], edges[0] + len(beats)))
        done = [n for n in span if trace[n]["done"]]
        assert len(done) == 1 and done[0] + 1 == beats[-1][0]
        assert (done[0] - span[0]
                == start_delay(lanes) + issue_cycles(lay.hidden, lanes, lay.n_blocks, units)), \
            f"H={lay.hidden} P={lanes} blocks={lay.n_blocks} E={units}"


@pytest.mark.parametrize("lanes,shapes", [
    (3, [(7, 4)]),
    (5, [(2, 4)]),               # P > H
    (8, [(7, 4), (3, 2)]),       # P > H, two layers
    (2, [(5, 1)]),
    (4, [(9, 2), (6, 3)]),       # P does not divide H
    (3, [(6, 3)]),               # P divides H
    (1, [(3, 4), (1, 1)]),
    (4, [(16, 4)]),
    (6, [(20, 4)]),              # P >= n_blocks + GATHER_CAPTURE: no gap between groups
    (12, [(30, 4), (9, 2)]),     # banks that shift (P > PICK_LANES_UP_TO), two layers
    (16, [(40, 4)]),             # shifting, P divides H
    (20, [(13, 3)]),             # shifting, P > H
])
def test_activate_engine_synthetic(lanes, shapes):
    layers = synthetic_layers(shapes, lanes)
    sequence = list(range(len(layers)))[::-1] + list(range(len(layers)))
    acc, trace = run_activate(layers, lanes, sequence, 20, seed=lanes)
    check_activate(layers, lanes, sequence, acc, trace)


@pytest.mark.parametrize("lanes,units,shapes", [
    (8, 2, [(7, 4)]),
    (8, 4, [(16, 4), (9, 2)]),   # a partial beat at the end of a layer
    (4, 4, [(6, 3)]),            # one beat a row group
    (16, 2, [(40, 4)]),          # P / E >= n_blocks + GATHER_CAPTURE: no gap
    (6, 2, [(11, 1)]),
    (32, 2, [(70, 4), (33, 2)]),  # shifting by 2 lanes, a partial beat
    (36, 4, [(50, 4)]),          # shifting by 4 lanes
    (24, 4, [(50, 4), (9, 2)]),  # picking, captured by registers (3 lane groups)
    (16, 16, [(40, 4), (7, 2)]),  # one beat a row group, its end decided a beat ahead

    (70, 2, [(150, 4), (33, 2)]),  # three regions, each stepping its read address
])
def test_activate_engine_several_units(lanes, units, shapes):
    layers = synthetic_layers(shapes, lanes)
    sequence = list(range(len(layers)))
    acc, trace = run_activate(layers, lanes, sequence, 20, seed=lanes, units=units)
    check_activate(layers, lanes, sequence, acc, trace, units)


@pytest.mark.parametrize("cell,lanes,units", [("lstm", 3, 1), ("gru", 4, 1), ("sru", 3, 1),
                                              ("ligru", 8, 1), ("gru", 4, 2), ("sru", 8, 4)])
def test_activate_engine_plan_layers(cell, lanes, units):
    """A plan's layers; layer 0 from both its accumulator banks where the design overlaps
    steps (`Plan.overlap`: the cells with recurrent columns)."""
    qm = qmodel(cell)
    plan = make_plan(qm, lanes, units=units)
    layers = activate_layers(plan)
    assert (layers[0].acc_bank_stride > 0) == plan.overlap == (cell != "sru")
    sequence, banks = [0, 1, 0], [1, 0, 0]
    acc, trace = run_activate(layers, lanes, sequence, plan.acc_width, seed=lanes,
                              units=units, banks=banks)
    check_activate(layers, lanes, sequence, acc, trace, units, banks)


# ---------------------------------------------------------------------------- HeadOutput

def head_words(rng, head, plan):
    """Random accumulator words, with rounding ties and the edges of saturation among them."""
    groups, P = plan.head.groups, plan.lanes
    width = plan.acc_width
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    shift = head.acc_frac - head.out_fmt.frac
    fmt = head.out_fmt
    special = []
    if shift > 0:
        half = 1 << (shift - 1)
        special = [(fmt.max_int << shift) + half - 1, (fmt.max_int << shift) + half,
                   (fmt.min_int << shift) - half, (fmt.min_int << shift) - half - 1,
                   (3 << shift) + half, (-3 << shift) + half, -half, half - 1, lo, hi]
    values = list(signed_values(rng, width, groups * P))
    for n, v in enumerate(rng.permutation(special)[:len(values) // 2]):
        values[2 * n] = int(np.clip(v, lo, hi))
    return np.array(values, dtype=np.int64).reshape(groups, P)


@pytest.mark.parametrize("cell,out,lanes,stall", [
    ("lstm", 5, 3, 0.0), ("lstm", 5, 3, 0.6), ("gru", 5, 1, 0.0), ("gru", 3, 8, 0.0),
    ("sru", 5, 2, 0.3), ("ligru", 3, 3, 0.0), ("gru", 5, 4, 0.8),
    ("gru", 13, 12, 0.4),        # two words; the read address as two copies
    ("lstm", 19, 12, 0.0),       # the lane picked in two steps, in its modelled cycles
    ("gru", 150, 68, 0.0),       # three steps: the group, the region (the last one part)
    ("lstm", 40, 36, 0.5),       # three steps, under stalls
])
def test_head_output(cell, out, lanes, stall):
    rng = np.random.default_rng(lanes)
    qm = qmodel(cell, 1, out)
    plan = make_plan(qm, lanes)
    head, hp = qm.head, plan.head
    words = head_words(rng, head, plan)
    acc = signed_values(rng, plan.acc_width, (plan.acc_depth, lanes))
    acc[hp.acc_base:hp.acc_base + hp.groups] = words
    expected = requantize(words.reshape(-1)[:out], head.acc_frac, head.out_fmt).tolist()
    assert len(set(expected)) > 1

    dut = HeadOutput(head, lanes, hp.acc_base, plan.acc_width, plan.acc_depth)
    sim = simulator(dut)
    add_read_port(sim, dut.acc_addr, dut.acc_word, acc, latency=2)
    trace = add_trace(sim, start=dut.start, done=dut.done, valid=dut.o.valid,
                      ready=dut.o.ready)
    got = []

    async def testbench(ctx):
        for _ in range(2):                   # twice: the second run starts from a done one
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            got.append(await stream_get(ctx, dut.o, out, stall=stall, rng=rng, timeout=200))
            await ctx.tick().repeat(4)

    sim.add_testbench(testbench)
    sim.run()
    for run, span in zip(got, spans(trace)):
        assert [o["data"] for o in run] == expected
        assert [o["last"] for o in run] == [0] * (out - 1) + [1]
        sent = [n for n in span if trace[n]["valid"] and trace[n]["ready"]]
        done = [n for n in span if trace[n]["done"]]
        assert len(sent) == out and done == sent[-1:]   # done as the last output is taken
        if stall == 0:
            assert done[0] - span[0] == output_cycles(hp.groups, out, lanes)


@pytest.mark.parametrize("lanes,groups", [(8, 1), (20, 3)])
def test_read_address_is_copied_per_slice(lanes, groups):
    """Above 8 lanes the activate engine and the head output drive the accumulator read
    address as a copy for each slice of the memory, each from registers of its own (the
    address and its gate), marked for synthesis to keep apart; 8 lanes keep one."""
    import re
    from amaranth.back import verilog
    from hwgen.design_folder import COPY_ATTR
    qm = qmodel("gru", 1, 3)
    plan = make_plan(qm, lanes)
    act = ActivateEngine(activate_layers(plan), lanes, plan.acc_width, plan.acc_depth,
                         plan.vector_depth, plan.cell_depth, 2)
    out = HeadOutput(qm.head, lanes, plan.head.acc_base, plan.acc_width, plan.acc_depth)
    for dut, names in ((act, {"rd_addr", "reading"}), (out, {"addr", "reading"})):
        address = Value.cast(dut.acc_addr)
        assert len(address) == groups * Shape.cast(range(plan.acc_depth)).width
        text = verilog.convert(dut, ports=[address])
        named = set(re.findall(r"\b(rd_addr|addr|reading)_c(\d+)\b", text))
        want = {(name, str(g)) for name in names for g in range(groups)} if groups > 1 else set()
        assert named == want and (COPY_ATTR in text) == (groups > 1)


def test_both_ways_of_issuing_are_tested():
    """The cases above take both the picking and the shifting banks."""
    assert not shifts_banks(16, 2) and not shifts_banks(8, 1) and shifts_banks(12, 1)
    assert shifts_banks(32, 2) and shifts_banks(36, 4) and PICK_LANES_UP_TO == 8
    assert not shifts_banks(24, 4)
