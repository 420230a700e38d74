"""The multiplier-free MATRIX datapath: add, subtract or skip, then scale once per row.

    ColumnEncoder -(fired columns)-> PointerReader -(spans)-> TernaryIssuer -(entries)->
        LevelSumArray (entry ROM, level sums S) ... ScaleCombiner (scales, biases, accumulators)
    ScheduleROM: the pointer reader's pointers and the combiner's scale digits, one block RAM

A fired column's pointer names its stored words (`ternary_plan`: only words with a nonzero
digit); the issuer issues them one a cycle, and the level-sum array adds, subtracts or skips
the column's delta into the word's level sum per lane: no multiplier. After the pass, the
combiner walks the pass's terms: per accumulator word and (side, level) feeding it,
acc += (a << shift) * S, and clears S for the next pass.

The scale product is shift-add, not a multiplier: a << shift is an unsigned `scale_bits`-bit
constant per row (stored aligned, so there is no shifter), and its product with S is the
sum of S << b over its set bits. The combiner takes `scale_step` of those bits a cycle,
lowest first up to the term's highest nonzero one, as masked adds into the word's running
sum, while S shifts left: per lane `scale_step` adders of the accumulator's width (Yosys
maps no `$mul` and so no DSP block, and the UP5K's eight SB_MAC16 do not bound the lanes).
The scales come from digit words, `scale_step` bits a lane a word, in block RAM after the
pointers (`ScheduleROM`); the biases live in the accumulator memory's spare words. A term
costs `TernaryPlan.term_digits` cycles.

The terms run row group by row group, and each word the combiner ends goes straight into
the activate engine's banks (`activate.ActivateEngine`, filled) as well as into the
accumulators: ACTIVATE begins with the combine, a row group as soon as its gate words are
made, and the combine waits only while both banks hold groups not yet issued. ACTIVATE's
element-wise work, the same with any sparsity, hides under the combine's.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fanout import copied, copy_groups
from .plan import WEIGHT_BEAT
from .rom import LATENCY as ENTRY_LATENCY, BankedROM, LoadedRAM, bank_depth_for
from .ternary_plan import TernaryPlan, digit_words, entry_width, entry_words

#: Edges from a fired column at the queue's head to its span at the issuer.
POINTER_LATENCY = 1
#: Edges from a span to its first issue.
ISSUER_LATENCY = 1
#: Registers between an issue and its level-sum write (s1, s1a, s1b: entry ROM; s2).
SUM_PIPELINE_DEPTH = ENTRY_LATENCY + 1
#: Edges from the combine's start to its walk's first digit, and from a digit to its
#: accumulator write (c0: the term's addresses registered, S and the base read, the digit's
#: scale bits out of their ROM; c1: S, the base and the registered scale bits added into
#: the running sum; c2: a finished word written from it). The block RAM outputs and the
#: accumulator's write meet no adder between registers but the running sum's (Fmax).
COMBINE_START, COMBINE_DEPTH = 1, 3
#: Level-sum stages a combine waits to be empty before it begins (s1, s1a): an update at s1b
#: or s2 writes its sum before the combine's first level-sum read, at c0, COMBINE_START + 1
#: edges after its start; one earlier would write in the same cycle as that read.
DRAIN_WAIT = SUM_PIPELINE_DEPTH - (COMBINE_START + 1)


#: The level-sum and accumulator memories never use what a read returns when a write to
#: the same word happens in the same cycle (the level sums forward that write's sum; the
#: combiner reads another word): Yosys need not build the bypass registers and
#: multiplexers that would define it (P x width of each), and leaves it to the block RAM.
NO_RW_CHECK = {"no_rw_check": 1}


def span_layout(tp: TernaryPlan, delta_width: int) -> data.StructLayout:
    """A fired column's pointer word and its delta."""
    return data.StructLayout({**{name: f.shape for name, f in pointer_layout(tp)},
                              "delta": signed(delta_width)})


def entry_issue_layout(tp: TernaryPlan, delta_width: int) -> data.StructLayout:
    return data.StructLayout({"e_addr": range(max(len(tp.entries), 2)), "side": 1,
                              "delta": signed(delta_width)})


class PointerReader(wiring.Component):
    """Looks up a fired column's stored words: its pointer word (first, count, side), read
    from the `ScheduleROM`.

    A one-entry stage: it takes a column whenever it is empty or its span leaves.

    Members
    -------
    columns : In(stream.Signature(fired_column_layout))   (`w_addr` is the pointer index)
    spans : Out(stream.Signature(span_layout))
    full : Out(1)   a span is held
    rom_addr, rom_en : Out   the pointer to read (the word read is held while `rom_en` is low)
    rom_data : In   the pointer word read an edge earlier
    """

    def __init__(self, tp: TernaryPlan, column_layout, delta_width: int):
        self.tp = tp
        self.span = span_layout(tp, delta_width)
        super().__init__({"columns": In(stream.Signature(column_layout)),
                          "spans": Out(stream.Signature(self.span)), "full": Out(1),
                          "rom_addr": Out(range(max(len(tp.pointers), 2))), "rom_en": Out(1),
                          "rom_data": In(pointer_layout(tp))})

    def elaborate(self, platform):
        m = Module()
        take = ~self.full | self.spans.ready
        delta = Signal.like(self.columns.payload.delta)
        m.d.comb += [self.columns.ready.eq(take), self.rom_addr.eq(self.columns.payload.w_addr),
                     self.rom_en.eq(take)]
        with m.If(take):
            m.d.sync += [self.full.eq(self.columns.valid), delta.eq(self.columns.payload.delta)]
        m.d.comb += [self.spans.valid.eq(self.full),
                     self.spans.payload.start.eq(self.rom_data.start),
                     self.spans.payload.count.eq(self.rom_data.count),
                     self.spans.payload.side.eq(self.rom_data.side),
                     self.spans.payload.delta.eq(delta)]
        return m


def pointer_layout(tp: TernaryPlan) -> data.StructLayout:
    return data.StructLayout({"start": range(len(tp.entries) + 1),
                              "count": range(tp.max_count + 1), "side": 1})


def pointer_words(tp: TernaryPlan) -> list:
    layout = pointer_layout(tp)
    return [layout.const({"start": s, "count": c, "side": k}).as_value().value
            for s, c, k in tp.pointers]


class ScheduleROM(wiring.Component):
    """The pointer words (`PointerReader`), then the combiner's digit words
    (`ternary_plan.digit_words`, from `digit_base`), in one block RAM with one read port:
    the pointer reader reads it during a MATRIX pass and the combiner during its combine,
    never both at once. Apart they took an EBR each, the pointers 68 words of one at
    digits_gru_t2s90e200 (with it 9 lanes fit the UP5K's 30).

    Members
    -------
    ptr_addr, ptr_en : In   the pointer reader's read (the word is held while `ptr_en` is low)
    digit_addr, digit_read : In   the combiner's read while it walks (it has the port then)
    data : Out   the word read an edge earlier
    """

    def __init__(self, tp: TernaryPlan):
        self.pointers, self.digits = pointer_words(tp), digit_words(tp)
        self.digit_base = len(self.pointers)
        self.width = max(Shape.cast(pointer_layout(tp)).width, tp.scale_step * tp.lanes)
        depth = len(self.pointers) + len(self.digits)
        super().__init__({"ptr_addr": In(range(max(len(self.pointers), 2))), "ptr_en": In(1),
                          "digit_addr": In(range(depth + 1)), "digit_read": In(1),
                          "data": Out(self.width)})

    def elaborate(self, platform):
        m = Module()
        words = self.pointers + self.digits
        # in block RAM, not logic (Yosys would build a ROM this small from LUTs)
        m.submodules.rom = rom = Memory(shape=unsigned(self.width), depth=len(words),
                                        init=words, attrs={"rom_style": "block"})
        rd = rom.read_port()
        m.d.comb += [rd.addr.eq(Mux(self.digit_read, self.digit_addr, self.ptr_addr)),
                     rd.en.eq(self.digit_read | self.ptr_en), self.data.eq(rd.data)]
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
        # off + 1 >= count, made a cycle ahead: `spans.ready` reaches back through the
        # pointer reader into the encoder's queue, and set Fmax with the compare in it
        last = Signal()
        m.d.comb += [self.busy.eq(active), self.issue.valid.eq(active & (cur.count != 0)),
                     self.issue.payload.e_addr.eq(cur.start + off),
                     self.issue.payload.side.eq(cur.side),
                     self.issue.payload.delta.eq(cur.delta),
                     self.spans.ready.eq(~active | last)]
        with m.If(active & ~last):
            m.d.sync += [off.eq(off + 1), last.eq(off + 2 >= cur.count)]
        with m.Elif(self.spans.ready):
            # the next span, if one waits, follows without a gap
            m.d.sync += [off.eq(0), active.eq(self.spans.valid), cur.eq(self.spans.payload),
                         last.eq(self.spans.payload.count <= 1)]
        return m


class LevelSumArray(wiring.Component):
    """P lanes that add, subtract or skip a delta into the level sums S (no multiplier).

    It owns the entry ROM (per stored word: each lane's digit sign and side-local S address)
    and the S memory, one per lane (lane k holds rows k, k + P, ... of every level and side,
    so each lane follows its own list of nonzero digits: `ternary_plan`). The issue names the
    side; a lane without a digit adds into its side's dump word (`TernaryPlan.dump`), which
    no term reads, so every lane updates every issue and needs no nonzero bit. Per lane: the
    entry ROM's three edges, then the S word read, then add and write in one stage; an
    update's read misses the update just before it, whose sum is forwarded when it hits the
    same word (one register a lane: no further stage, no term registers; the delta and its
    negation are registered once for all lanes).

    The combiner reads S through `drain_addr` (every lane's word comes out at `s_word` one
    edge later) and clears it as it reads (`drain`): S is zero at every pass's start.

    Members
    -------
    issue : In(stream.Signature(entry_issue_layout, always_ready=True))
    drain_addr : In(range(s_depth)); drain : In(1)   read now, cleared next cycle (while no
        update reads S)
    s_word : Out(ArrayLayout(signed(s_width), P))
    drainable : Out(1)   a combine may begin: no update in the first `DRAIN_WAIT` stages
    weights : In(stream.Signature(unsigned(WEIGHT_BEAT)))   entries="load" only: the entry
        words, `ternary_plan.entry_image` (into a `rom.LoadedRAM`: the UP5K's SPRAM)
    loaded : Out(1)   entries="load" only: every entry word is in place
    """

    def __init__(self, tp: TernaryPlan, delta_width: int, entries: str = "rom"):
        self.tp, self.delta_width = tp, delta_width
        self.loads_entries = entries == "load"
        self.lanes = data.ArrayLayout(signed(tp.s_width), tp.lanes)
        members = {"issue": In(stream.Signature(entry_issue_layout(tp, delta_width),
                                                always_ready=True)),
                   "drain_addr": In(range(tp.s_depth)), "drain": In(1),
                   "s_word": Out(self.lanes), "drainable": Out(1)}
        if self.loads_entries:
            members.update(weights=In(stream.Signature(unsigned(WEIGHT_BEAT))),
                           loaded=Out(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        tp, P = self.tp, self.tp.lanes
        ab = tp.local_bits
        entry = self._entry_rom(m)

        s1 = Signal(data.StructLayout({"valid": 1, "side": 1,
                                       "delta": signed(self.delta_width)}))
        s1a, s1b = Signal.like(s1), Signal.like(s1)
        m.d.sync += [s1.valid.eq(self.issue.valid), s1.side.eq(self.issue.payload.side),
                     s1.delta.eq(self.issue.payload.delta), s1a.eq(s1), s1b.eq(s1a)]
        neg = entry[:P]
        # the delta and its negation, once for all lanes: a lane only picks one
        plus = Signal(signed(self.delta_width + 1))
        minus = Signal.like(plus)
        m.d.sync += [plus.eq(s1b.delta), minus.eq(-s1b.delta)]
        lane_ctl = data.StructLayout({"valid": 1, "s_addr": range(tp.s_depth), "neg": 1,
                                      "forward": 1})
        in_flight = [s1.valid, s1a.valid, s1b.valid]   # then each lane's s2
        # a drained word is cleared the cycle after its read, so that no read needs the
        # word a write changes in the same cycle (`NO_RW_CHECK`)
        clear = Signal()
        clear_addr = Signal.like(self.drain_addr)
        m.d.sync += [clear.eq(self.drain), clear_addr.eq(self.drain_addr)]
        for k in range(P):
            s_mem = Memory(shape=signed(tp.s_width), depth=tp.s_depth, init=[],
                           attrs=NO_RW_CHECK)
            m.submodules[f"s_mem{k}"] = s_mem
            s_rd, s_wr = s_mem.read_port(), s_mem.write_port()
            s_addr = Cat(entry[P + k * ab:P + (k + 1) * ab], s1b.side)

            # s1b: the lane's S word is read; s2: +delta, -delta or skip into it, written
            # at the end of s2. The read of the update just behind misses that write: it
            # takes the sum written instead (`forward`, found a cycle ahead)
            s2 = Signal(lane_ctl, name=f"s2_{k}")
            m.d.sync += [s2.valid.eq(s1b.valid), s2.s_addr.eq(s_addr),
                         s2.neg.eq(neg[k]), s2.forward.eq(s2.valid & (s2.s_addr == s_addr))]
            m.d.comb += [s_rd.addr.eq(Mux(s1b.valid, s_addr, self.drain_addr)),
                         self.s_word[k].eq(s_rd.data)]
            last_sum = Signal.like(s_wr.data, name=f"last_sum{k}")
            m.d.sync += last_sum.eq(s_wr.data)
            with m.If(s2.valid):
                m.d.comb += [s_wr.addr.eq(s2.s_addr), s_wr.en.eq(1),
                             s_wr.data.eq(Mux(s2.forward, last_sum, s_rd.data)
                                          + Mux(s2.neg, minus, plus))]
            with m.Elif(clear):
                m.d.comb += [s_wr.addr.eq(clear_addr), s_wr.en.eq(1)]  # data 0
            in_flight.append(s2.valid)
        m.d.comb += self.drainable.eq(~Cat(*in_flight[:DRAIN_WAIT]).any())
        return m

    def _entry_rom(self, m):
        """The entry word, `ENTRY_LATENCY` edges after its issue. Entries that fit one bank
        have their address registered and the block RAM's output once, where `BankedROM`
        registers a bank's output and then the selected word: a register of the address's
        width instead of a second one of the entry's P x (1 + b) bits."""
        tp, words = self.tp, entry_words(self.tp)
        shape = unsigned(entry_width(tp))
        if self.loads_entries:   # the same latency as a ROM bank's
            m.submodules.e_rom = ram = LoadedRAM(shape, len(words), WEIGHT_BEAT)
            wiring.connect(m, wiring.flipped(self.weights), ram.load)
            m.d.comb += [ram.addr.eq(self.issue.payload.e_addr), self.loaded.eq(ram.loaded)]
            return ram.data
        if len(words) > bank_depth_for(shape.width):
            m.submodules.e_rom = rom = BankedROM(shape, words)
            m.d.comb += rom.addr.eq(self.issue.payload.e_addr)
            return rom.data
        m.submodules.e_rom = rom = Memory(shape=shape, depth=len(words), init=words)
        rd = rom.read_port()
        addr = Signal.like(self.issue.payload.e_addr, name="e_addr_q")
        # no reset on a register that only holds ROM data (as `BankedROM`'s banks)
        entry = Signal(shape, name="entry_q", reset_less=True)
        m.d.sync += [addr.eq(self.issue.payload.e_addr), entry.eq(rd.data)]
        m.d.comb += rd.addr.eq(addr)
        return entry


def term_layout(tp: TernaryPlan, acc_depth: int, bias_depth: int) -> data.StructLayout:
    return data.StructLayout({"s_addr": range(tp.s_depth), "acc_addr": range(acc_depth),
                              "b_addr": range(bias_depth), "first": 1, "last": 1,
                              "digits": range(1, max(tp.term_digits(t) for t in tp.terms) + 1),
                              "gate": range(max(max(t[6] for t in tp.terms) + 1, 2)),
                              "group_last": 1})


def term_words(tp: TernaryPlan) -> list:
    return [{"s_addr": t[0], "acc_addr": t[1], "b_addr": t[2], "first": int(t[3]),
             "last": int(t[4]), "digits": tp.term_digits(t), "gate": t[6],
             "group_last": int(t[8])} for t in tp.terms]


def pass_groups(tp: TernaryPlan, p: int) -> int:
    """Row groups of pass p's terms."""
    return sum(t[7] for t in tp.terms[tp.term_base[p]:tp.term_base[p + 1]])


class ScaleCombiner(wiring.Component):
    """Adds a pass's scaled level sums into the accumulators, `scale_step` scale bits a cycle.

    Owns the term ROM (per term: S address, accumulator and bias words, first/last of its
    word, its digit count) and the accumulator memory, and reads the digit words (per term
    and digit, `scale_step` bits of each lane's aligned scale: `ternary_plan.digit_words`)
    from the `ScheduleROM`, at `digit_base` and on; the accumulator memory's words past
    `acc_depth` hold the biases (read-only: no bias ROM of its own). A word's first term
    starts from the bias (`from_bias`) or the stored word (delta passes after the first
    step); each term adds scale * S, one digit a cycle, lowest first (S shifts left by
    `scale_step` a cycle); the last writes the word.

    Members
    -------
    start : In(1); sel : In(range(passes))   run pass `sel`'s terms
    from_bias : In(1)   start each word from its bias
    drain_addr, drain : Out   read and clear S (`LevelSumArray`)
    s_word : In
    digit_addr, digit_read : Out; digits : In   the digit word to read while walking, and
        the word read an edge earlier (`ScheduleROM`)
    read_addr : In(copied(range(acc_depth), P))   accumulator word to read while idle (its
        first copy: this array's memory is not sliced)
    acc_word : Out(ArrayLayout(signed(acc_width), P))   the word read two edges earlier
    done : Out(1)   no term left or in flight
    fill, fill_gate, fill_last : Out   a layer pass's word ends its walk: its gate block, and
        whether it is its row group's last; `word` holds it two edges later (the words
        go straight into the `activate.ActivateEngine`'s banks as they are made: ACTIVATE
        runs beside the combine, not after it)
    word : Out(ArrayLayout(signed(acc_width), P))   the running sum
    groups_issued : In   row groups ACTIVATE has issued: a row group's walk waits while two
        are walked and not issued (both banks taken)
    """

    def __init__(self, tp: TernaryPlan, acc_width: int, bias_words, acc_depth: int,
                 digit_base: int = 0):
        self.tp, self.acc_width, self.acc_depth = tp, acc_width, acc_depth
        self.digit_base = digit_base
        self.bias_words = bias_words
        self.layout = term_layout(tp, acc_depth, len(bias_words))
        self.max_groups = max(pass_groups(tp, p) for p in range(len(tp.term_base) - 1))
        P = tp.lanes
        acc = data.ArrayLayout(signed(acc_width), P)
        super().__init__({"start": In(1), "sel": In(range(len(tp.term_base) - 1)),
                          "from_bias": In(1),
                          "drain_addr": Out(range(tp.s_depth)), "drain": Out(1),
                          "s_word": In(data.ArrayLayout(signed(tp.s_width), P)),
                          "digit_addr": Out(range(digit_base + len(digit_words(tp)) + 1)),
                          "digit_read": Out(1), "digits": In(tp.scale_step * P),
                          "read_addr": In(copied(range(acc_depth), P)), "acc_word": Out(acc),
                          "done": Out(1), "fill": Out(1),
                          "fill_gate": Out(self.layout["gate"].shape),
                          "fill_last": Out(1), "word": Out(acc),
                          "groups_issued": In(range(self.max_groups + 1))})

    def elaborate(self, platform):
        m = Module()
        tp, P, layout = self.tp, self.tp.lanes, self.layout
        step = tp.scale_step
        acc_lanes = data.ArrayLayout(signed(self.acc_width), P)
        digit_base = [self.digit_base]
        for p in range(len(tp.term_base) - 1):
            digit_base.append(digit_base[-1] + tp.pass_digits(p))
        # the term ROM is small (in logic): the next term is read into a register while the
        # walk is on this one, so that the term's digit count, which steers the walk, comes
        # from a register rather than through the ROM's logic
        words = term_words(tp)
        # (one word more, a copy of the last: the address read past the last term)
        m.submodules.t_rom = t_rom = Memory(shape=layout, depth=len(words) + 1,
                                            init=words + words[-1:])
        m.submodules.acc_mem = acc_mem = Memory(
            shape=acc_lanes, depth=self.acc_depth + len(self.bias_words),
            init=[[0] * P] * self.acc_depth + self.bias_words.tolist(), attrs=NO_RW_CHECK)
        t_rd = t_rom.read_port(domain="comb")
        acc_rd, acc_wr = acc_mem.read_port(), acc_mem.write_port()

        # walk the pass's terms, their digits one a cycle (w: the digit word; term: the one
        # walked, t_next: the ROM address of the one after it)
        t_next = Signal(range(len(tp.terms) + 1))
        term = Signal(layout)
        w = Signal.like(self.digit_addr)
        end = Signal.like(w)
        digit = Signal.like(t_rd.data.digits)
        busy = Signal()
        head = len(tp.term_base) - 2
        fills = Signal()    # the pass is a layer's: its words fill ACTIVATE's banks
        begun = Signal(range(self.max_groups + 1))   # row groups whose walk has begun
        group_start = Signal()   # the digit walked now is its row group's first (a pass's is)
        with m.Switch(self.sel):
            for p in range(len(tp.term_base) - 1):
                with m.Case(p):
                    with m.If(self.start):
                        m.d.sync += [term.eq(layout.const(words[tp.term_base[p]])),
                                     t_next.eq(tp.term_base[p] + 1), w.eq(digit_base[p]),
                                     end.eq(digit_base[p + 1]), busy.eq(1),
                                     fills.eq(p != head), begun.eq(0), group_start.eq(1)]
        last_digit = digit + 1 == term.digits
        # a row group's walk waits while ACTIVATE's two banks hold groups not yet issued
        # (from registers: the term ROM's outputs are not on this path into the enables)
        hold = fills & group_start & (begun == self.groups_issued + 2)
        walking = busy & ~hold
        with m.If(walking & group_start):
            m.d.sync += begun.eq(begun + 1)
        with m.If(walking):
            # the next digit begins a row group after its last term's last digit
            m.d.sync += [w.eq(w + 1), group_start.eq(last_digit & term.group_last)]
            with m.If(w + 1 == end):
                m.d.sync += busy.eq(0)
            with m.If(last_digit):
                m.d.sync += [digit.eq(0), term.eq(t_rd.data), t_next.eq(t_next + 1)]
            with m.Else():
                m.d.sync += digit.eq(digit + 1)
        m.d.comb += t_rd.addr.eq(t_next)
        # base_addr: the word read at its start (its bias, or the stored word), acc_addr:
        # the word written at its end (a word of one term of one digit does both at once)
        walk = data.StructLayout({"valid": 1, "s_addr": range(tp.s_depth),
                                  "base_addr": range(self.acc_depth + len(self.bias_words)),
                                  "acc_addr": range(self.acc_depth),
                                  "first_digit": 1, "word_start": 1, "word_end": 1,
                                  "gate": self.layout["gate"].shape, "group_last": 1})
        c0, c1, c2 = Signal(walk), Signal(walk), Signal(walk)
        m.d.sync += [c0.valid.eq(walking), c0.s_addr.eq(term.s_addr),
                     c0.gate.eq(term.gate), c0.group_last.eq(term.group_last),
                     c0.base_addr.eq(term.acc_addr), c0.acc_addr.eq(term.acc_addr),
                     c0.first_digit.eq(digit == 0),
                     c0.word_start.eq(term.first & (digit == 0)),
                     c0.word_end.eq(term.last & last_digit)]
        with m.If(self.from_bias & term.first & (digit == 0)):
            m.d.sync += c0.base_addr.eq(self.acc_depth + term.b_addr)

        # c0: read S (cleared as read), the digit, and the word's base (bias or stored)
        # an idle read's address waits a cycle instead of its P-lane word (`acc_word`
        # comes two edges after `read_addr`, as the activate engine expects)
        read_addr = Signal(range(self.acc_depth))
        m.d.sync += read_addr.eq(self.read_addr if copy_groups(P) == 1 else self.read_addr[0])
        m.d.comb += [self.drain_addr.eq(c0.s_addr), self.drain.eq(c0.valid & c0.first_digit),
                     self.digit_addr.eq(w), self.digit_read.eq(busy),
                     acc_rd.addr.eq(Mux(c0.valid, c0.base_addr, read_addr)),
                     self.acc_word.eq(acc_rd.data)]
        scale_bits = Signal.like(self.digits)
        m.d.sync += [c1.eq(c0), scale_bits.eq(self.digits), c2.eq(c1)]

        # c1: `step` scale bits: masked shifted adds of S (no multiplier), into the word's
        # running sum (modulo the accumulator's width: the word's final sum fits, as the
        # reference's does); c2: after the last digit of its last term, the word is written
        shifted = Signal(acc_lanes)   # S << (step x digit) of the term in progress
        run = Signal(acc_lanes)
        total = Signal(acc_lanes)
        for k in range(P):
            operand = Signal(signed(self.acc_width), name=f"operand{k}")
            m.d.comb += operand.eq(Mux(c1.first_digit, self.s_word[k], shifted[k]))
            part = sum(Mux(scale_bits[k * step + b], operand << b, 0) for b in range(step))
            m.d.comb += total[k].eq(Mux(c1.word_start, acc_rd.data[k], run[k]) + part)
            m.d.sync += shifted[k].eq(operand << step)
        m.d.sync += run.eq(total)
        m.d.comb += [acc_wr.addr.eq(c2.acc_addr), acc_wr.data.eq(run),
                     acc_wr.en.eq(c2.valid & c2.word_end)]
        m.d.comb += [self.done.eq(~(busy | c0.valid | c1.valid | c2.valid)),
                     self.fill.eq(fills & c0.valid & c0.word_end),
                     self.fill_gate.eq(c0.gate), self.fill_last.eq(c0.group_last),
                     self.word.eq(run)]
        return m
