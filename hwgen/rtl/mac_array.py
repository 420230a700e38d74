"""The MAC array: P lanes that add weight-word x delta products into the accumulator memory.

It owns the weight ROM, the bias memory and the accumulator memory. One `issue` a cycle
names a weight word and the accumulator word its P products update; the word's products
are exact, shifted into accumulator alignment, and added to the accumulator word (or to
the bias, on the first touch of a word in a pass)::

    issue   the ROM address goes out; the entry is registered (s1)
    +1, +2  the weight word comes out of its ROM banks (s1a, s1b; narrow weights are packed
            into pair operands in the ROM's last stage); above 8 lanes a stage more
            before them (s1r: `rom_delay`)
    +3      multiply; read the bias and accumulator words (s2)
    +4      register those words and align the products (s3); pick the base: bias,
            a forwarded sum or the stored word (decided a stage early)
    +5      accumulate, onto the base or the sum of the update one ahead, and write (s4)
    +6      above 8 lanes, the write is of the registered sum (`write_delay`)

Above 8 lanes the multiply takes two edges (`product_delay`): operands and product
registered, a stage s1c between s1b and s2 (`hwgen.registered_product`, the module whose
registers the ECP5's MULT18X18D holds itself).

The accumulator read port is not transparent (its block RAM output goes straight into a
register, for Fmax), so a word read for an update misses the writes of the three updates
before it (four with the delayed write): the newest of those sums that hit the same word is
forwarded.

The rest of the datapath (gather, head output) reads the accumulators through a read port
of its own, so that it may read while updates run (the next step's input columns during
this step's ACTIVATE): `acc_word` holds the word read at `read_addr` two edges earlier.

Above `fanout.LANES_PER_COPY` lanes the registers that steer every lane (the base pick, its
forward flag, the alignment shift) and the multipliers' common operand (the delta) are
copied per group of lanes (the base pick decided two stages early into one register, then
copied per region of `fanout.REGION_LANES`, then per `PICK_LANES`), and the bias and
accumulator memories are slices of a group each (the accumulators of `ACC_SLICE_LANES`, each
read and written at its own copies of the addresses and write enable), addressed by copies
of the stage registers. Each copy is taken from its region's copy of the stage before
(`fanout.spread`): no one control net reaches every lane (`hwgen.rtl.fanout`).

Narrow weights share a multiplier two lanes at a time (`pairs_products`). Every lane
multiplies the same delta d, so one product of the packed operand w_hi * 2^s + w_lo holds
both: w_hi * d * 2^s + w_lo * d. With s bits enough for any w_lo * d, the low s bits are
w_lo * d (sign-extended) and the rest, plus that low part's sign, is w_hi * d. It relies on
|d| < 2^(delta_width - 1): a delta is a difference of two values of delta_width - 1 bits.
The packed operand is `MULTIPLIER_WIDTH` bits, the narrowest device multiplier (iCE40
SB_MAC16); the one sum that does not fit, w_hi = -2^(w-1) with w_lo < 0, wraps, and its
high product is then taken from the delta directly.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .. import registered_product
from .arith import two_edge_product
from .fanout import (LANES_PER_COPY, REGION_LANES, copied, copies, copy_groups, group_of,
                     spread)
from .plan import WEIGHT_BEAT
from .rom import (LATENCY as ROM_LATENCY, BankedROM, LoadedRAM, address_copies,
                  shallow_attrs)

#: Pipeline registers between an issue and its accumulator write (s1, s1a, s1b, s2, s3, s4).
PIPELINE_DEPTH = 6


def write_delay(lanes: int) -> int:
    """Cycles the accumulator write waits after the sum: above `LANES_PER_COPY` lanes the
    registered sum is written (its slice's LUT RAM copies lie far from the adder: the
    adder's carry chain and that net were the 64-lane design's longest path)."""
    return int(copy_groups(lanes) > 1)


def product_delay(lanes: int) -> int:
    """Cycles the multiply takes beyond one: above `LANES_PER_COPY` lanes the operands are
    registered at the multiplier as well as the product (`hwgen.registered_product`: the
    ECP5's MULT18X18D holds both registers; without them the register -> multiplier ->
    register path was the 64-lane design's longest)."""
    return registered_product.LATENCY - 1 if copy_groups(lanes) > 1 else 0


def rom_delay(lanes: int) -> int:
    """Cycles the weight word takes beyond the ROM's `LATENCY`: above `LANES_PER_COPY` lanes
    each bank of the weight memory is registered twice (`BankedROM`'s ``bank_registers``:
    a block RAM's output into its bank register 70 columns away was the 64-lane design's
    longest path)."""
    return int(copy_groups(lanes) > 1)


def pipeline_depth(lanes: int) -> int:
    """Registers between an issue and its accumulator write at `lanes` lanes."""
    return PIPELINE_DEPTH + rom_delay(lanes) + write_delay(lanes) + product_delay(lanes)


assert ROM_LATENCY == 3  # the ROM's edges are s1, s1a, s1b (and s1r before s1a)
assert registered_product.LATENCY == 2  # above 8 lanes one stage more: s1c
assert LANES_PER_COPY % 2 == 0  # a pair's two lanes take one lane group's copies
#: Lanes of one slice of the accumulator memory above `LANES_PER_COPY` lanes, each with its
#: own register for the datapath's read address: a slice of 8 lanes' LUT RAM spread over 33
#: rows of the ECP5-85F (its lanes' adders sit by their multipliers), and its one address
#: register's net took 10.1 of the 64-lane design's 12.9 ns (the datapath's read address);
#: later a lane group's write enable, into its four slices, 11.2 of 12.3 ns.
ACC_SLICE_LANES = 2
assert LANES_PER_COPY % ACC_SLICE_LANES == 0  # a slice takes its lane group's copies
#: Lanes whose base multiplexers one copy of the base pick steers above `LANES_PER_COPY`
#: lanes: a copy for 8 lanes' 8 x 23 multiplexers, decoded in one LUT, sent that decode 6.8
#: ns over 17 columns (the 64-lane design's longest path at c702b53).
PICK_LANES = 2
assert LANES_PER_COPY % PICK_LANES == 0  # a pick's lanes take one lane group's copy
#: Operand width of the narrowest device multiplier (iCE40 SB_MAC16: 16 x 16 signed).
MULTIPLIER_WIDTH = 16


def pair_shift(weight_width: int, delta_width: int) -> int:
    """Bits of the low product in a packed pair: |w * d| < 2^(w + d - 2) for a w-bit weight
    and a delta of magnitude below 2^(d - 1), so w + d - 1 signed bits hold it."""
    return weight_width + delta_width - 1


def pairs_products(weight_width: int, delta_width: int) -> bool:
    """Whether two lanes' weights packed into one operand fit the device multipliers."""
    return pair_shift(weight_width, delta_width) + weight_width <= MULTIPLIER_WIDTH


def issue_layout(weight_depth: int, acc_depth: int, bias_depth: int, delta_width: int,
                 shifts: int, w_addr_copies: int = 1) -> data.StructLayout:
    """One MAC issue: the weight word (its address, or that many copies of it from as many
    registers: `rom.address_copies`), the accumulator and bias words, the column's delta,
    whether to start from the bias, and the index of the alignment shift."""
    w_addr = range(weight_depth)
    if w_addr_copies > 1:
        w_addr = data.ArrayLayout(unsigned(Shape.cast(w_addr).width), w_addr_copies)
    return data.StructLayout({"w_addr": w_addr,
                              "acc_addr": range(acc_depth), "b_addr": range(bias_depth),
                              "bias": 1, "delta": signed(delta_width),
                              "shift": range(shifts)})


class MacArray(wiring.Component):
    """P MAC lanes over the weight ROM, the bias memory and the accumulator memory.

    Parameters
    ----------
    weight_width, acc_width : lane widths of a weight and of an accumulator.
    weight_words, bias_words : (depth, P) integer arrays, the memories' contents.
    acc_depth : accumulator words.
    delta_width : width of a column's delta (signed; its magnitude below 2^(delta_width - 1)).
    shifts : the alignment shifts (left, into the accumulator's fraction) an issue picks from.
    weights : "rom" (the words as the weight memory's contents) or "load" (a memory with
        none, filled through `weights`: `hwgen.rtl.plan.weight_image`; `weight_words` then
        gives its depth only).
    product_instances : above 8 lanes, the products as instances of
        `registered_product.MODULE` (for Verilog: the design folder holds the module), not
        as Amaranth logic of the same registers (for Amaranth's simulator).

    Members
    -------
    issue : In(stream.Signature(issue_layout(...), always_ready=True))   one update a cycle
        at most (the array never stalls)
    read_addr : In(copied(range(acc_depth), P))   accumulator word to read (any cycle);
        above 8 lanes a copy for each slice of the memory (`fanout.copied`)
    acc_word : Out(ArrayLayout(signed(acc_width), P))   the word read two edges earlier
    idle : Out(1)   no update is in flight (a register: set from the stages' next valid bits,
        so that its readers' clock enables do not wait behind the OR of five stages)
    weights : In(stream.Signature(unsigned(WEIGHT_BEAT)))   with weights="load" only: the
        weight image, a byte a beat
    loaded : Out(1)   with weights="load" only: every weight word is in place

    Attributes
    ----------
    multipliers : multipliers the array elaborates (P, or P/2 rounded up with narrow weights).
    """

    def __init__(self, weight_width: int, acc_width: int, weight_words, bias_words,
                 acc_depth: int, delta_width: int, shifts, weights: str = "rom",
                 product_instances: bool = False):
        self.lanes = weight_words.shape[1]
        self.product_instances = product_instances
        self.weight_width, self.acc_width, self.acc_depth = weight_width, acc_width, acc_depth
        self.weight_words, self.bias_words = weight_words, bias_words
        self.delta_width, self.shifts = delta_width, tuple(shifts)
        self.loads_weights = weights == "load"
        self.pairs = self.lanes // 2 if pairs_products(weight_width, delta_width) else 0
        self.multipliers = self.lanes - self.pairs
        self.w_addr_copies = (1 if self.loads_weights else
                              address_copies(self.lanes * weight_width, len(weight_words)))
        self.layout = issue_layout(len(weight_words) + 1, acc_depth, len(bias_words),
                                   delta_width, len(self.shifts), self.w_addr_copies)
        lanes = data.ArrayLayout(signed(acc_width), self.lanes)
        members = {"issue": In(stream.Signature(self.layout, always_ready=True)),
                   "read_addr": In(copied(range(acc_depth), self.lanes)),
                   "acc_word": Out(lanes), "idle": Out(1, init=1)}
        if self.loads_weights:
            members.update(weights=In(stream.Signature(unsigned(WEIGHT_BEAT))),
                           loaded=Out(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        P = self.lanes
        lanes_of = lambda width: data.ArrayLayout(signed(width), P)  # noqa: E731
        decode = (self._operand_layout(), self._operands) if self.pairs else None
        if self.loads_weights:
            m.submodules.w_ram = w_rom = LoadedRAM(lanes_of(self.weight_width),
                                                   len(self.weight_words), WEIGHT_BEAT,
                                                   decode=decode,
                                                   bank_registers=1 + rom_delay(P))
            wiring.connect(m, wiring.flipped(self.weights), w_rom.load)
            m.d.comb += self.loaded.eq(w_rom.loaded)
        else:
            m.submodules.w_rom = w_rom = BankedROM(
                lanes_of(self.weight_width), self.weight_words.tolist(), decode=decode,
                copies=self.w_addr_copies, bank_registers=1 + rom_delay(P))
        groups = copy_groups(P)
        if groups == 1:
            # in block RAM, not logic: Yosys builds a ROM this small from LUTs, and on the
            # iCE40 its address decode was the longest path
            m.submodules.b_mem = b_mem = Memory(
                shape=lanes_of(self.acc_width), depth=len(self.bias_words),
                init=self.bias_words.tolist(), attrs=self._bias_attrs())
            m.submodules.acc_mem = acc_mem = Memory(
                shape=lanes_of(self.acc_width), depth=self.acc_depth, init=[],
                attrs=shallow_attrs(P * self.acc_width, self.acc_depth, writable=True))
            b_rd, acc_rd, acc_wr = b_mem.read_port(), acc_mem.read_port(), acc_mem.write_port()
            out_rd = acc_mem.read_port()   # the rest of the datapath's
        else:
            b_rd, acc_rd, acc_wr, out_rd = self._sliced_memories(m)

        # stage 1, (1r,) 1a, 1b: the weight word comes out of its banks (block RAM output
        # straight into a multiplexer or a multiplier would be the longest path); s1b is
        # the stage whose word `w_rom.data` holds
        s1 = Signal(data.StructLayout({"valid": 1, "issue": self.layout}))
        s1a, s1b = Signal.like(s1, name="s1a"), Signal.like(s1, name="s1b")
        s1r = Signal.like(s1, name="s1r") if rom_delay(P) else None
        # above 8 lanes s1c, as the multiplier registers its operands; `before_s2` is the
        # stage that s2 follows
        two_edge_product = product_delay(P) == 1
        s1c = Signal.like(s1, name="s1c") if two_edge_product else None
        before_s2 = s1c if two_edge_product else s1b
        if self.w_addr_copies == 1:
            m.d.comb += w_rom.addr.eq(self.issue.payload.w_addr)
        else:
            m.d.comb += [w_rom.addr[g].eq(self.issue.payload.w_addr[g])
                         for g in range(self.w_addr_copies)]
        m.d.sync += s1.valid.eq(self.issue.valid)
        with m.If(self.issue.valid):
            m.d.sync += s1.issue.eq(self.issue.payload)
        if s1r is not None:
            m.d.sync += [s1r.eq(s1), s1a.eq(s1r)]
        else:
            m.d.sync += s1a.eq(s1)
        m.d.sync += s1b.eq(s1a)
        if two_edge_product:
            m.d.sync += s1c.eq(s1b)

        # stage 2: multiply; read the bias and accumulator words
        s2 = Signal(data.StructLayout({"valid": 1, "acc_addr": range(self.acc_depth),
                                       "bias": 1, "shift": range(len(self.shifts))}))
        prods = [Signal(signed(self.weight_width + self.delta_width), name=f"prod{k}")
                 for k in range(P)]
        if groups == 1:
            deltas = [s1b.issue.delta]
        else:   # the multipliers' common operand, a copy per lane group, set as s1b is
            deltas = copies(signed(self.delta_width), P, "delta")
            spread(m, deltas, (s1r if s1r is not None else s1).issue.delta)
        self._multiply(m, w_rom.data, deltas, prods)
        m.d.sync += [s2.valid.eq(before_s2.valid), s2.acc_addr.eq(before_s2.issue.acc_addr),
                     s2.bias.eq(before_s2.issue.bias), s2.shift.eq(before_s2.issue.shift)]
        if groups == 1:
            m.d.comb += [b_rd.addr.eq(s1b.issue.b_addr), acc_rd.addr.eq(s1b.issue.acc_addr),
                         out_rd.addr.eq(self.read_addr)]
        else:   # each slice's address register, set as s1c is
            spread(m, b_rd.addr, s1a.issue.b_addr)
            spread(m, acc_rd.addr, s1a.issue.acc_addr, per=ACC_SLICE_LANES)

        # stage 3: register the accumulator and bias words and align the products (block
        # RAM output straight into the adder would be the longest path)
        s3 = Signal.like(s2)
        acc_q = Signal.like(acc_rd.data, name="acc_q")
        bias_q = Signal.like(b_rd.data, name="bias_q")
        m.d.sync += [s3.eq(s2), acc_q.eq(acc_rd.data), bias_q.eq(b_rd.data)]
        # the datapath's read: two edges from `read_addr` to `acc_word` either way; above 8
        # lanes the first edge is each slice's address register (`_sliced_memories`), so that
        # no logic stands between an address and its slice's LUT RAM (Fmax)
        if groups == 1:
            m.d.sync += self.acc_word.eq(out_rd.data)
        else:
            m.d.comb += self.acc_word.eq(out_rd.data)
        # next cycle's stages are this cycle's issue, s1, (s1r,) s1a, s1b, (s1c,) s2, s3 (and s4
        # when the write is a cycle later)
        delayed = write_delay(P) == 1
        s4 = Signal(data.StructLayout({"valid": 1, "acc_addr": range(self.acc_depth)}))
        busy = self.issue.valid | s1.valid | s1a.valid | s1b.valid | s2.valid | s3.valid
        if s1r is not None:
            busy |= s1r.valid
        if two_edge_product:
            busy |= s1c.valid
        m.d.sync += self.idle.eq(~(busy | s4.valid if delayed else busy))

        # accumulate (a product with a delta may exceed the accumulator's range alone; the
        # sum never does), from the bias, a forwarded sum or the stored word. Stage 3 picks
        # the base (s3's pick, decided in stage 2) into a register, and stage 4 adds: the
        # adder's only mux is the 2-way one for the update one ahead, whose sum is still
        # being made in stage 3's cycle (Fmax).
        # (pick, fwd1 and the alignment shift steer every lane: a copy per lane group)
        # (a delayed write needs a fourth: the update four ahead, written as this one's
        # word was read)
        BIAS, FWD1, FWD2, FWD3, STORED, FWD4 = range(6)
        n_picks = 6 if delayed else 5
        last = Signal.like(s4)
        last2 = Signal.like(s4, name="last2") if delayed else None
        if groups == 1:
            pick, fwd1 = Signal(range(n_picks)), Signal()
            picks, fwd1s, aligns = [pick], [fwd1], [s2.shift]
            # s2 decides its pick among the updates ahead of it
            deciding, ahead, decided, pick_lanes = s2, (s3, s4, last, last2), picks, P
        else:
            # s1b decides (the pipeline never stalls: the updates a stage ahead of s1b are
            # those ahead of s2 two cycles later) into one register, copied a cycle later
            # per region (`next_pick`), and each `PICK_LANES` lanes take their own copy
            # of that as s2 would have decided. The decision's compares straight into the
            # group copies spread over the array were the longest path at 128 lanes, and
            # the decode of one copy for 8 lanes' base multiplexers before that; then the
            # decision into 16 group copies (17.6 ns of routing)
            assert delayed and two_edge_product
            decision = Signal(range(n_picks), name="pick_decision")
            decided, pick_lanes = [decision], PICK_LANES
            next_picks = copies(range(n_picks), P, "next_pick", per=REGION_LANES)
            m.d.sync += [c.eq(decision) for c in next_picks]
            picks = copies(range(n_picks), P, "pick", per=PICK_LANES)
            fwd1s = copies(1, P, "fwd1", per=PICK_LANES)
            m.d.sync += [pick.eq(next_picks[group_of(i * PICK_LANES, REGION_LANES)])
                         for i, pick in enumerate(picks)]
            in_s1c = SimpleNamespace(valid=s1c.valid, acc_addr=s1c.issue.acc_addr)
            deciding, ahead = s1b.issue, (in_s1c, s2, s3, s4)
            aligns = copies(range(len(self.shifts)), P, "align")
            spread(m, aligns, s1b.issue.shift)
        # the sums made in s4: written now, or registered (`last_sum`) and written next cycle
        sums = Signal.like(acc_wr.data, name="sums") if delayed else acc_wr.data
        last_sum = Signal.like(acc_wr.data, name="last_sum")
        last_sum2 = Signal.like(acc_wr.data, name="last_sum2")
        m.d.sync += [s4.valid.eq(s3.valid), s4.acc_addr.eq(s3.acc_addr), last.eq(s4),
                     last_sum.eq(sums), last_sum2.eq(last_sum),
                     *(fwd1.eq(pick == FWD1) for fwd1, pick in zip(fwd1s, picks))]
        if groups == 1:
            m.d.comb += [acc_wr.addr.eq(s4.acc_addr), acc_wr.en.eq(s4.valid)]
        else:   # each slice's write address and enable, set as s4 is (the written stage)
            assert delayed
            spread(m, acc_wr.addr, s3.acc_addr, per=ACC_SLICE_LANES)
            spread(m, acc_wr.en, s3.valid, per=ACC_SLICE_LANES)
        bases = [bias_q, acc_q, last_sum, last_sum2, acc_q]
        if delayed:
            last_sum3 = Signal.like(acc_wr.data, name="last_sum3")
            m.d.sync += [last2.eq(last), last_sum3.eq(last_sum2)]
            m.d.comb += acc_wr.data.eq(last_sum)
            bases.append(last_sum3)
        # (`deciding`: the fields, bias and acc_addr, of the update that decides)
        hits = [st.valid & (st.acc_addr == deciding.acc_addr) for st in ahead if st is not None]
        with m.If(deciding.bias):
            m.d.sync += [pick.eq(BIAS) for pick in decided]
        with m.Elif(hits[0]):
            # the update one ahead: written as this one adds
            m.d.sync += [pick.eq(FWD1) for pick in decided]
        with m.Elif(hits[1]):
            # two ahead: written as this one picks its base
            m.d.sync += [pick.eq(FWD2) for pick in decided]
        with m.Elif(hits[2]):
            # three ahead: written as this one's word was read (delayed: a cycle later)
            m.d.sync += [pick.eq(FWD3) for pick in decided]
        if delayed:
            with m.Elif(hits[3]):
                m.d.sync += [pick.eq(FWD4) for pick in decided]
        with m.Else():
            m.d.sync += [pick.eq(STORED) for pick in decided]
        for k in range(P):
            pick, fwd1 = picks[group_of(k, pick_lanes)], fwd1s[group_of(k, pick_lanes)]
            align = aligns[group_of(k)]
            aligned = Signal(signed(self.acc_width + 1), name=f"aligned{k}")
            with m.Switch(align):
                for idx, sh in enumerate(self.shifts):
                    with m.Case(idx):
                        m.d.sync += aligned.eq(prods[k] << sh)
            base = Signal.like(acc_q[k], name=f"base{k}")
            addend = Signal.like(aligned, name=f"addend{k}")
            # (indexed by pick; FWD1's entry is never added: `fwd1` takes last_sum instead)
            m.d.sync += [base.eq(Array([b[k] for b in bases])[pick]), addend.eq(aligned)]
            m.d.comb += sums[k].eq(Mux(fwd1, last_sum[k], base) + addend)
        return m

    def _bias_attrs(self) -> dict:
        return {"rom_style": "block", **shallow_attrs(self.lanes * self.acc_width,
                                                      len(self.bias_words), writable=False)}

    def _sliced_memories(self, m):
        """The bias memory as slices of `LANES_PER_COPY` lanes and the accumulator memory as
        slices of `ACC_SLICE_LANES`, each addressed (and written) by registers of its own
        (the bias slices: of their lane group; `hwgen.rtl.fanout`): ports whose `addr` (and
        `en`) are lists of those
        registers, to be set as the stage registers are, and whose `data` is the whole P-lane
        word. The datapath's read port registers its group's copy of `read_addr` (its readers
        copy it) beside each accumulator slice: its data is then `acc_word` itself, still two
        edges after `read_addr`."""
        P, w = self.lanes, self.acc_width
        word = data.ArrayLayout(signed(w), P)
        ports = {key: SimpleNamespace(data=Signal(word, name=f"{key}_data"))
                 for key in ("b_rd", "acc_rd", "acc_wr", "out_rd")}
        ports["b_rd"].addr = copies(range(len(self.bias_words)), P, "b_rd_addr")
        per = ACC_SLICE_LANES
        ports["acc_rd"].addr = copies(range(self.acc_depth), P, "acc_rd_addr", per=per)
        ports["acc_wr"].addr = copies(range(self.acc_depth), P, "acc_wr_addr", per=per)
        ports["acc_wr"].en = copies(1, P, "acc_wr_en", per=per)
        out_addr = copies(range(self.acc_depth), P, "out_rd_addr", per=ACC_SLICE_LANES)
        lanes_of = lambda per, k: range(k * per, min(P, (k + 1) * per))  # noqa: E731

        def share(port, lanes):   # a slice's share of a port's P-lane word
            return port.data.as_value()[lanes.start * w:lanes.stop * w]

        for g in range(copy_groups(P)):
            lanes = lanes_of(LANES_PER_COPY, g)
            m.submodules[f"b_mem{g}"] = b_mem = Memory(
                shape=data.ArrayLayout(signed(w), len(lanes)), depth=len(self.bias_words),
                attrs=self._bias_attrs(),
                init=self.bias_words[:, lanes.start:lanes.stop].tolist())
            b_rd = b_mem.read_port()
            m.d.comb += [b_rd.addr.eq(ports["b_rd"].addr[g]),
                         share(ports["b_rd"], lanes).eq(b_rd.data.as_value())]
        acc_attrs = shallow_attrs(P * w, self.acc_depth, writable=True)
        for k, addr in enumerate(out_addr):
            lanes = lanes_of(ACC_SLICE_LANES, k)
            g = group_of(lanes.start)
            m.submodules[f"acc_mem{k}"] = acc_mem = Memory(
                shape=data.ArrayLayout(signed(w), len(lanes)), depth=self.acc_depth, init=[],
                attrs=acc_attrs)
            acc_rd, acc_wr, out_rd = acc_mem.read_port(), acc_mem.write_port(), acc_mem.read_port()
            m.d.sync += addr.eq(self.read_addr[g])
            m.d.comb += [acc_rd.addr.eq(ports["acc_rd"].addr[k]),
                         acc_wr.addr.eq(ports["acc_wr"].addr[k]),
                         acc_wr.en.eq(ports["acc_wr"].en[k]), out_rd.addr.eq(addr),
                         share(ports["acc_rd"], lanes).eq(acc_rd.data.as_value()),
                         share(ports["out_rd"], lanes).eq(out_rd.data.as_value()),
                         acc_wr.data.as_value().eq(share(ports["acc_wr"], lanes))]
        return ports["b_rd"], ports["acc_rd"], ports["acc_wr"], ports["out_rd"]

    def _operand_layout(self) -> data.StructLayout:
        """The multipliers' weight operands: each pair's packed operand and whether its sum
        wrapped, then the odd lane's weight."""
        fields = {"packed": data.ArrayLayout(signed(MULTIPLIER_WIDTH), self.pairs),
                  "wraps": self.pairs}
        if self.lanes % 2:
            fields["single"] = signed(self.weight_width)
        return data.StructLayout(fields)

    def _operands(self, weights):
        """A weight word's operands (`_operand_layout`), built in the ROM's last stage so that
        the packing adder is not in front of the multipliers."""
        w, s = self.weight_width, pair_shift(self.weight_width, self.delta_width)
        pairs = [(weights[2 * j], weights[2 * j + 1]) for j in range(self.pairs)]
        packed = [((hi << s) + lo)[:MULTIPLIER_WIDTH] for lo, hi in pairs]
        wraps = [(hi == -(1 << (w - 1))) & (lo < 0) for lo, hi in pairs]
        return Cat(*packed, *wraps, *([weights[self.lanes - 1]] if self.lanes % 2 else []))

    def _product(self, m, p: Signal, a, b) -> None:
        """`p` = a * b (signed), 1 + `product_delay` edges later: a multiplier whose product
        is registered, and above 8 lanes its operands too (`arith.two_edge_product`)."""
        if not product_delay(self.lanes):
            m.d.sync += p.eq(a * b)
        else:
            two_edge_product(m, p, a, b, instance=self.product_instances)

    def _as_late_as_products(self, m, reg: Signal) -> Signal:
        """`reg`, a register set as the multipliers take their operands, delayed as their
        products are (`product_delay`)."""
        if not product_delay(self.lanes):
            return reg
        late = Signal.like(reg, name=f"{reg.name}_late")
        m.d.sync += late.eq(reg)
        return late

    def _multiply(self, m, rom_data, deltas, prods):
        """`prods[k]` = weight k * delta, 1 + `product_delay` stages later: a multiplier per
        lane, or per pair of lanes (the module docstring's packing); lane k takes the
        delta's copy `deltas[group_of(k)]` (a pair's two lanes are in one group: groups are
        even)."""
        if not self.pairs:
            for k in range(self.lanes):
                self._product(m, prods[k], rom_data[k], deltas[group_of(k)])
            return
        if self.lanes % 2:
            self._product(m, prods[-1], rom_data.single, deltas[group_of(self.lanes - 1)])
        w, s = self.weight_width, pair_shift(self.weight_width, self.delta_width)
        # the wrapped pair's high product, -2^(w-1) * d, is the same for every pair (of a
        # lane group)
        wrapped_highs = copies(signed(w + self.delta_width), self.lanes, "wrapped_high")
        m.d.sync += [high.eq(-(delta << (w - 1))) for high, delta in zip(wrapped_highs, deltas)]
        wrapped_highs = [self._as_late_as_products(m, high) for high in wrapped_highs]
        for j in range(self.pairs):
            delta, wrapped_high = deltas[group_of(2 * j)], wrapped_highs[group_of(2 * j)]
            both = Signal(signed(MULTIPLIER_WIDTH + self.delta_width), name=f"pair{j}")
            wraps = Signal(name=f"wraps{j}")
            self._product(m, both, rom_data.packed[j], delta)
            m.d.sync += wraps.eq(rom_data.wraps[j])
            wraps = self._as_late_as_products(m, wraps)
            m.d.comb += [prods[2 * j].eq(both[:s].as_signed()),
                         prods[2 * j + 1].eq(Mux(wraps, wrapped_high,
                                                 both[s:].as_signed() + both[s - 1]))]
