"""The multiplier-free MATRIX datapath: add, subtract or skip, then scale once per row.

    ColumnEncoder -(fired columns)-> PointerReader -(spans)-> TernaryIssuer -(entries)->
        LevelSumArray (entry ROM, level sums S) ... ScaleCombiner (scales, biases, accumulators)

A fired column's pointer names its stored words (`ternary_plan`: only words with a nonzero
digit); the issuer issues them one a cycle, and the level-sum array adds, subtracts or skips
the column's delta into the word's level sum per lane: no multiplier. After the pass, the
combiner walks the pass's terms one a cycle: per accumulator word and (side, level) feeding
it, acc += (a * S) << shift, and clears S for the next pass.

The scale product is shift-add, not a multiplier: a is an unsigned `scale_bits`-bit
constant per row, so a * S is the sum of S << b over a's set bits, written as masked
shifted adds in two register stages (Yosys maps no `$mul` and so no DSP block: the design
has 0 DSPs, and the UP5K's eight SB_MAC16 do not bound the lanes). It costs about
`scale_bits` adders of S's width per lane, once per design, against a multiplier per lane;
one term a cycle keeps the combine at (accumulator words x levels x sides) cycles a pass,
small beside the matrix work.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .rom import BankedROM
from .ternary_plan import TernaryPlan, entry_width, entry_words, s_addr_bits

#: Edges from a fired column at the queue's head to its span at the issuer.
POINTER_LATENCY = 1
#: Edges from a span to its first issue.
ISSUER_LATENCY = 1
#: Registers between an issue and its level-sum write (s1, s1a, s1b: entry ROM; s2, s3).
SUM_PIPELINE_DEPTH = 5
#: Edges from the combine's start to its first term's ROM word, and from a term to its
#: accumulator write (c0: term ROM read; c1: S, scale, base read; c2: half products;
#: c3: product aligned; written at the end of c3).
COMBINE_START, COMBINE_DEPTH = 1, 4


def span_layout(tp: TernaryPlan, delta_width: int) -> data.StructLayout:
    return data.StructLayout({"start": range(len(tp.entries) + 1),
                              "count": range(tp.max_count + 1), "delta": signed(delta_width)})


def entry_issue_layout(tp: TernaryPlan, delta_width: int) -> data.StructLayout:
    return data.StructLayout({"e_addr": range(max(len(tp.entries), 2)),
                              "delta": signed(delta_width)})


class PointerReader(wiring.Component):
    """Looks up a fired column's stored words: (first, count) from the pointer ROM.

    A one-entry stage: it takes a column whenever it is empty or its span leaves.

    Members
    -------
    columns : In(stream.Signature(fired_column_layout))   (`w_addr` is the pointer index)
    spans : Out(stream.Signature(span_layout))
    full : Out(1)   a span is held
    """

    def __init__(self, tp: TernaryPlan, column_layout, delta_width: int):
        self.tp = tp
        self.span = span_layout(tp, delta_width)
        super().__init__({"columns": In(stream.Signature(column_layout)),
                          "spans": Out(stream.Signature(self.span)), "full": Out(1)})

    def elaborate(self, platform):
        m = Module()
        tp = self.tp
        start_bits = Shape.cast(self.span["start"].shape).width
        words = [s | c << start_bits for s, c in tp.pointers]
        m.submodules.ptr_rom = rom = Memory(
            shape=unsigned(start_bits + Shape.cast(self.span["count"].shape).width),
            depth=len(words), init=words)
        rd = rom.read_port()
        take = ~self.full | self.spans.ready
        delta = Signal.like(self.columns.payload.delta)
        m.d.comb += [self.columns.ready.eq(take), rd.addr.eq(self.columns.payload.w_addr),
                     rd.en.eq(take)]
        with m.If(take):
            m.d.sync += [self.full.eq(self.columns.valid), delta.eq(self.columns.payload.delta)]
        m.d.comb += [self.spans.valid.eq(self.full),
                     self.spans.payload.start.eq(rd.data[:start_bits]),
                     self.spans.payload.count.eq(rd.data[start_bits:]),
                     self.spans.payload.delta.eq(delta)]
        return m


class TernaryIssuer(wiring.Component):
    """Issues a span's stored words into the level-sum array, one a cycle; a column with
    none takes one cycle (so the issuer is never faster than the encoder: cycles per pass
    are the sum over fired columns of max(1, words)).

    Members
    -------
    spans : In(stream.Signature(span_layout))
    issue : Out(stream.Signature(entry_issue_layout, always_ready=True))
    busy : Out(1)
    """

    def __init__(self, tp: TernaryPlan, delta_width: int):
        self.span = span_layout(tp, delta_width)
        super().__init__({"spans": In(stream.Signature(self.span)),
                          "issue": Out(stream.Signature(entry_issue_layout(tp, delta_width),
                                                        always_ready=True)),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cur = Signal(self.span)
        active = Signal()
        off = Signal.like(cur.count)
        last = off + 1 >= cur.count
        m.d.comb += [self.busy.eq(active), self.issue.valid.eq(active & (cur.count != 0)),
                     self.issue.payload.e_addr.eq(cur.start + off),
                     self.issue.payload.delta.eq(cur.delta),
                     self.spans.ready.eq(~active | last)]
        with m.If(active & ~last):
            m.d.sync += off.eq(off + 1)
        with m.Elif(self.spans.ready):
            # the next span, if one waits, follows without a gap
            m.d.sync += [off.eq(0), active.eq(self.spans.valid), cur.eq(self.spans.payload)]
        return m


class LevelSumArray(wiring.Component):
    """P lanes that add, subtract or skip a delta into the level sums S (no multiplier).

    It owns the entry ROM (per stored word: each lane's digit and S address) and the S
    memory, one per lane (lane k holds rows k, k + P, ... of every level and side, so each
    lane follows its own list of nonzero digits: `ternary_plan`). Pipeline and forwarding
    are the MAC array's (`mac_array`), lane by lane: the entry ROM's three edges, then the
    S word read, then add and write; an update's read misses the two updates before it,
    whose sums are forwarded when they hit the same word.

    The combiner reads S through `drain_addr` (every lane's word comes out at `s_word` one
    edge later) and clears it as it reads (`drain`): S is zero at every pass's start.

    Members
    -------
    issue : In(stream.Signature(entry_issue_layout, always_ready=True))
    drain_addr : In(range(s_depth)); drain : In(1)   read and clear (while idle)
    s_word : Out(ArrayLayout(signed(s_width), P))
    idle : Out(1)
    """

    def __init__(self, tp: TernaryPlan, delta_width: int):
        self.tp, self.delta_width = tp, delta_width
        self.lanes = data.ArrayLayout(signed(tp.s_width), tp.lanes)
        super().__init__({"issue": In(stream.Signature(entry_issue_layout(tp, delta_width),
                                                       always_ready=True)),
                          "drain_addr": In(range(tp.s_depth)), "drain": In(1),
                          "s_word": Out(self.lanes), "idle": Out(1)})

    def elaborate(self, platform):
        m = Module()
        tp, P = self.tp, self.tp.lanes
        ab = s_addr_bits(tp)
        m.submodules.e_rom = rom = BankedROM(unsigned(entry_width(tp)), entry_words(tp))

        s1 = Signal(data.StructLayout({"valid": 1, "delta": signed(self.delta_width)}))
        s1a, s1b = Signal.like(s1), Signal.like(s1)
        m.d.comb += rom.addr.eq(self.issue.payload.e_addr)
        m.d.sync += [s1.valid.eq(self.issue.valid), s1.delta.eq(self.issue.payload.delta),
                     s1a.eq(s1), s1b.eq(s1a)]
        nz, neg = rom.data[:P], rom.data[P:2 * P]
        lane_ctl = data.StructLayout({"valid": 1, "s_addr": range(tp.s_depth)})
        in_flight = [s1.valid, s1a.valid, s1b.valid]
        for k in range(P):
            s_mem = Memory(shape=signed(tp.s_width), depth=tp.s_depth, init=[])
            m.submodules[f"s_mem{k}"] = s_mem
            s_rd, s_wr = s_mem.read_port(), s_mem.write_port()
            s_addr = rom.data[2 * P + k * ab:2 * P + (k + 1) * ab]

            # s2: the lane's S word is read; its term chosen: +delta, -delta or 0
            s2, s3, last = (Signal(lane_ctl, name=f"{n}_{k}") for n in ("s2", "s3", "last"))
            term = Signal(signed(self.delta_width + 1), name=f"term{k}")
            m.d.sync += [term.eq(Mux(neg[k], -s1b.delta, s1b.delta)),
                         s2.valid.eq(s1b.valid & nz[k]), s2.s_addr.eq(s_addr)]
            m.d.comb += [s_rd.addr.eq(Mux(s1b.valid, s_addr, self.drain_addr)),
                         self.s_word[k].eq(s_rd.data)]

            # s3: add into the stored word, or the newest in-flight sum of the same word
            s_q = Signal.like(s_rd.data, name=f"s_q{k}")
            term3 = Signal.like(term, name=f"term3_{k}")
            m.d.sync += [s3.eq(s2), s_q.eq(s_rd.data), term3.eq(term)]
            last_sum = Signal.like(s_wr.data, name=f"last_sum{k}")
            last_sum2 = Signal.like(s_wr.data, name=f"last_sum2_{k}")
            m.d.sync += [last.eq(s3), last_sum.eq(s_wr.data), last_sum2.eq(last_sum)]
            FWD1, FWD2, STORED = range(3)
            pick = Signal(range(3), name=f"pick{k}")
            with m.If(s3.valid & (s3.s_addr == s2.s_addr)):
                m.d.sync += pick.eq(FWD1)
            with m.Elif(last.valid & (last.s_addr == s2.s_addr)):
                m.d.sync += pick.eq(FWD2)
            with m.Else():
                m.d.sync += pick.eq(STORED)
            with m.If(s3.valid):
                base = Array([last_sum, last_sum2, s_q])[pick]
                m.d.comb += [s_wr.addr.eq(s3.s_addr), s_wr.en.eq(1),
                             s_wr.data.eq(base + term3)]
            with m.Elif(self.drain):
                m.d.comb += [s_wr.addr.eq(self.drain_addr), s_wr.en.eq(1)]  # data 0
            in_flight += [s2.valid, s3.valid]
        m.d.comb += self.idle.eq(~Cat(*in_flight).any())
        return m


def term_layout(tp: TernaryPlan, acc_depth: int, bias_depth: int) -> data.StructLayout:
    return data.StructLayout({"s_addr": range(tp.s_depth), "acc_addr": range(acc_depth),
                              "b_addr": range(bias_depth), "shift": range(len(tp.shifts)),
                              "first": 1, "last": 1,
                              "scales": data.ArrayLayout(unsigned(tp.scale_bits), tp.lanes)})


def term_words(tp: TernaryPlan, layout) -> list:
    out = []
    for s_addr, acc_addr, b_addr, shift, first, last, scales in tp.terms:
        out.append({"s_addr": s_addr, "acc_addr": acc_addr, "b_addr": b_addr,
                    "shift": shift, "first": int(first), "last": int(last), "scales": scales})
    return out


class ScaleCombiner(wiring.Component):
    """Adds a pass's scaled level sums into the accumulators, one term a cycle.

    Owns the term ROM (per term: S address, accumulator and bias words, shift, first/last
    of its word, the P lanes' scales), the bias memory and the accumulator memory. A word's
    first term starts from the bias (`from_bias`) or the stored word (delta passes after
    the first step); each term adds (scale * S) << shift; the last writes the word.

    Members
    -------
    start : In(1); sel : In(range(passes))   run pass `sel`'s terms
    from_bias : In(1)   start each word from its bias
    drain_addr, drain : Out   read and clear S (`LevelSumArray`)
    s_word : In
    read_addr : In(range(acc_depth))   accumulator word to read while idle
    acc_word : Out(ArrayLayout(signed(acc_width), P))   the word read two edges earlier
    done : Out(1)   no term left or in flight
    """

    def __init__(self, tp: TernaryPlan, acc_width: int, bias_words, acc_depth: int):
        self.tp, self.acc_width, self.acc_depth = tp, acc_width, acc_depth
        self.bias_words = bias_words
        self.layout = term_layout(tp, acc_depth, len(bias_words))
        P = tp.lanes
        acc = data.ArrayLayout(signed(acc_width), P)
        super().__init__({"start": In(1), "sel": In(range(len(tp.term_base) - 1)),
                          "from_bias": In(1),
                          "drain_addr": Out(range(tp.s_depth)), "drain": Out(1),
                          "s_word": In(data.ArrayLayout(signed(tp.s_width), P)),
                          "read_addr": In(range(acc_depth)), "acc_word": Out(acc),
                          "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        tp, P, layout = self.tp, self.tp.lanes, self.layout
        acc_lanes = data.ArrayLayout(signed(self.acc_width), P)
        m.submodules.t_rom = t_rom = Memory(shape=layout, depth=max(len(tp.terms), 1),
                                            init=term_words(tp, layout))
        m.submodules.b_mem = b_mem = Memory(shape=acc_lanes, depth=len(self.bias_words),
                                            init=self.bias_words.tolist())
        m.submodules.acc_mem = acc_mem = Memory(shape=acc_lanes, depth=self.acc_depth,
                                                init=[])
        t_rd, b_rd = t_rom.read_port(), b_mem.read_port()
        acc_rd, acc_wr = acc_mem.read_port(), acc_mem.write_port()

        # c0: walk the pass's terms through the term ROM
        t = Signal(range(len(tp.terms) + 1))
        end = Signal.like(t)
        busy = Signal()
        with m.Switch(self.sel):
            for p in range(len(tp.term_base) - 1):
                with m.Case(p):
                    with m.If(self.start):
                        m.d.sync += [t.eq(tp.term_base[p]), end.eq(tp.term_base[p + 1]),
                                     busy.eq(1)]
        with m.If(busy):
            m.d.sync += t.eq(t + 1)
            with m.If(t + 1 == end):
                m.d.sync += busy.eq(0)
        m.d.comb += t_rd.addr.eq(t)
        c0 = Signal()
        m.d.sync += c0.eq(busy)
        term = t_rd.data

        # c1: S (cleared as read), the scales, and the word's base (bias or stored)
        m.d.comb += [self.drain_addr.eq(term.s_addr), self.drain.eq(c0),
                     b_rd.addr.eq(term.b_addr),
                     acc_rd.addr.eq(Mux(c0, term.acc_addr, self.read_addr))]
        ctl = data.StructLayout({"valid": 1, "acc_addr": range(self.acc_depth), "first": 1,
                                 "last": 1, "shift": range(len(tp.shifts))})
        c1 = Signal(ctl)
        scales = Signal.like(term.scales)
        m.d.sync += [c1.valid.eq(c0), c1.acc_addr.eq(term.acc_addr), c1.first.eq(term.first),
                     c1.last.eq(term.last), c1.shift.eq(term.shift), scales.eq(term.scales)]
        acc_q = Signal(acc_lanes)
        m.d.sync += acc_q.eq(acc_rd.data)
        m.d.comb += self.acc_word.eq(acc_q)

        # c2: half products: S << b over the scale's set bits (shift-add, no multiplier)
        c2, c3 = Signal(ctl), Signal(ctl)
        base2, base3 = Signal(acc_lanes), Signal(acc_lanes)
        half = (tp.scale_bits + 1) // 2
        prod_w = tp.s_width + tp.scale_bits
        lo = Signal(data.ArrayLayout(signed(prod_w), P))
        hi = Signal(data.ArrayLayout(signed(prod_w), P))
        m.d.sync += [c2.eq(c1), base2.eq(Mux(self.from_bias, b_rd.data, acc_rd.data))]
        for k in range(P):
            s = self.s_word[k]
            bits = [Mux(scales[k][b], s << b, 0) for b in range(tp.scale_bits)]
            m.d.sync += [lo[k].eq(sum(bits[:half])), hi[k].eq(sum(bits[half:]))]

        # c3: the product, aligned into the accumulator's fraction (modulo its width: the
        # word's final sum fits, as the reference's does)
        aligned = Signal(acc_lanes)
        m.d.sync += [c3.eq(c2), base3.eq(base2)]
        with m.Switch(c2.shift):
            for idx, sh in enumerate(tp.shifts):
                with m.Case(idx):
                    for k in range(P):
                        m.d.sync += aligned[k].eq((lo[k] + hi[k]) << sh)

        # end of c3: add into the word's running sum; its last term writes the word
        run = Signal(acc_lanes)
        total = Signal(acc_lanes)
        for k in range(P):
            m.d.comb += total[k].eq(Mux(c3.first, base3[k], run[k]) + aligned[k])
        m.d.sync += run.eq(total)
        m.d.comb += [acc_wr.addr.eq(c3.acc_addr), acc_wr.data.eq(total),
                     acc_wr.en.eq(c3.valid & c3.last)]
        m.d.comb += self.done.eq(~(busy | c0 | c1.valid | c2.valid | c3.valid))
        return m
