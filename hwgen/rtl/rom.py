"""The weight memory: a read-only memory split by depth into banks, each bank's output
registered (`BankedROM`), or a writable one filled through a stream (`LoadedRAM`).

A block RAM's clock-to-output time is long (ECP5 DP16KD: most of an 8 ns cycle). A deep
memory that Yosys builds from several block RAMs puts a depth multiplexer after them, and
that path set Fmax. Here every bank is one DP16KD deep (`bank_depth_for`), its output goes
straight into a register, and the multiplexer works between registers.

With ``bank_registers=2`` each bank's output is registered twice before the select (a cycle
more, `latency`): a wide ROM's banks lie far apart on the device, so the select (and the
bank registers with it) sits between them, far from each block RAM; the second register
lets the first sit by its block RAM (the 64-lane design's longest path was a DP16KD's
output, 5.6 ns clock-to-output, then 6.1 ns of routing to its bank register 70 columns away).

The bank registers have no reset: they only ever hold ROM data, and with a synchronous
reset Yosys 0.50-0.70 once mapped a partly filled bank onto a DP16KD with two of its data
outputs driving one bit (nextpnr: "multiply driven"), at 4-bit weights and 4 lanes. The same
fault came back with unrelated changes elsewhere, from the names: a bank of a layout shape
has wires `port__data[k]` (the lanes' views) beside `port__data`, and Yosys 0.70 joined
`port__data[1][0]` to bit 1 of `port__data`. The banks hold raw bits, so no such name exists.
"""
from __future__ import annotations

from amaranth.hdl import (Array, Cat, Const, Module, Mux, Shape, ShapeCastable, Signal,
                          unsigned)
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design_folder import LOADED_ATTR, SHALLOW_ATTR

#: DP16KD shapes (depth: widest word): a bank is one block RAM deep on the ECP5, and its
#: words fill whole EBRs on the iCE40 (SB_RAM40_4K: 256 x 16 ... 2048 x 2).
_DP16KD = {16384: 1, 8192: 2, 4096: 4, 2048: 9, 1024: 18, 512: 36}
LATENCY = 3  # clock edges from `addr` to `data`: bank read, bank register, bank select


def latency(bank_registers: int = 1) -> int:
    """Clock edges from `addr` to `data` with `bank_registers` registers after each bank."""
    return LATENCY + bank_registers - 1


def raw_bits(shape, word) -> int:
    """`word` of `shape` as the unsigned integer of its bits."""
    const = shape.const(word) if isinstance(shape, ShapeCastable) else Const(word, shape)
    return Const.cast(const).value & ((1 << Shape.cast(shape).width) - 1)


def bank_depth_for(width: int, words: int | None = None) -> int:
    """The bank depth of a ROM of `words` words of `width` bits: the DP16KD depth that
    takes the fewest block RAMs in all (`block_rams`); among equals the deepest shape that
    holds a word in one block RAM, then the fewest banks. Without `words`: that deepest
    shape (512 for words wider than 36 bits, which take several block RAMs side by side).

    Wide words waste the part of a block RAM's width they do not fill: 256-bit words take
    8 DP16KD of 512 x 36 (288 bits) a bank but 15 of 1024 x 18 (270 bits) for twice the
    depth; 7360 words take 113 block RAMs in 8 banks instead of 120 in 15."""
    one_block = max([depth for depth, w in _DP16KD.items() if width <= w] or [512])
    if words is None:
        return one_block
    return min(sorted(_DP16KD), key=lambda depth: (
        block_rams(width, words, depth), depth != one_block, -(-words // depth)))


#: A memory this shallow fills at most an eighth of a DP16KD's 512 words ...
SHALLOW_DEPTH = 64
#: ... and one this wide takes three or more of them side by side (twice that with two
#: read ports): the accumulators and biases at many lanes (64 lanes: 33 x 1472 bits).
SHALLOW_WIDTH = 2 * 36


def shallow_attrs(width: int, depth: int, *, writable: bool) -> dict:
    """The attributes marking a memory of `depth` words of `width` bits as wide and shallow
    (`SHALLOW_ATTR`: "ram", or "rom" without writes), where block RAM would hold it with
    most of its words empty; {} for any other memory."""
    if depth > SHALLOW_DEPTH or width <= SHALLOW_WIDTH:
        return {}
    return {SHALLOW_ATTR: "ram" if writable else "rom"}


def block_rams(width: int, words: int, bank_depth: int) -> int:
    """DP16KD count of `words` words of `width` bits in banks `bank_depth` deep, each bank
    one block RAM deep, in the shape that takes the fewest (the last may be shallower)."""
    def bank(n):
        return min(-(-width // w) for depth, w in _DP16KD.items() if depth >= n)
    full, rest = divmod(words, bank_depth)
    return full * bank(bank_depth) + (bank(rest) if rest else 0)


#: The block RAMs of a bank side by side take their read address from one register per this
#: many (each a copy, `address_copies`): from a single one, the address of GRU I=40 H=256's
#: 64-lane ROM (2 banks of 57 DP16KD) had 16.9 ns of routing, Fmax 50 MHz on the ECP5-85F.
BLOCKS_PER_ADDRESS = 8


def address_copies(width: int, words: int) -> int:
    """Registers the read address of a `BankedROM` of `words` words of `width` bits comes
    from: one per `BLOCKS_PER_ADDRESS` block RAMs side by side in a bank (1 for words that
    span that many or fewer)."""
    depth = bank_depth_for(width, words)
    side_by_side = block_rams(width, min(words, depth), depth)
    return -(-side_by_side // BLOCKS_PER_ADDRESS)


class BankedROM(wiring.Component):
    """`data` holds ``words[addr]`` `latency(bank_registers)` clock edges after `addr` was
    presented (`LATENCY` with one register after each bank, the default).

    With ``decode=(out_shape, fn)``, `data` holds ``fn(words[addr])`` instead: a little
    logic on the word, done between the bank select and the output register.

    With ``copies`` > 1, `addr` is that many copies of the address (from as many registers,
    `address_copies`), and copy g addresses slice g of every bank's block RAMs side by side.

    Members
    -------
    addr : In(range(len(words))), or In(ArrayLayout(unsigned(...), copies))
    data : Out(shape)
    """

    def __init__(self, shape, words, bank_depth: int | None = None, *, decode=None,
                 copies: int = 1, bank_registers: int = 1):
        if bank_depth is None:
            bank_depth = bank_depth_for(Shape.cast(shape).width, len(words))
        if bank_depth & (bank_depth - 1):
            raise ValueError(f"bank depth {bank_depth} is not a power of two")
        self.shape, self.words, self.bank_depth = shape, list(words), bank_depth
        self.decode, self.copies, self.bank_registers = decode, copies, bank_registers
        addr = range(max(2, len(self.words)))
        if copies > 1:
            addr = data.ArrayLayout(unsigned(Shape.cast(addr).width), copies)
        super().__init__({"addr": In(addr),
                          "data": Out(shape if decode is None else decode[0])})

    def _slices(self, width: int) -> list[tuple[int, int]]:
        """The bit ranges of a word that the address copies read: whole block RAMs each."""
        if self.copies == 1:
            return [(0, width)]
        per_block = _DP16KD.get(self.bank_depth, 36)
        blocks = -(-width // per_block)
        step = -(-blocks // self.copies) * per_block
        return [(lo, min(width, lo + step)) for lo in range(0, width, step)]

    def elaborate(self, platform):
        m = Module()
        bits = self.bank_depth.bit_length() - 1
        chunks = [self.words[k:k + self.bank_depth]
                  for k in range(0, len(self.words), self.bank_depth)]
        outs = []
        width = Shape.cast(self.shape).width
        addrs = [self.addr] if self.copies == 1 else list(self.addr)
        slices = self._slices(width)
        for b, chunk in enumerate(chunks):
            # raw bits, not `shape` (see the module docstring: the read data's names)
            raw = [raw_bits(self.shape, word) for word in chunk]
            out = Signal(Shape.cast(self.shape).width, name=f"bank{b}_q", reset_less=True)
            for g, (lo, hi) in enumerate(slices):
                mask = (1 << (hi - lo)) - 1
                bank = Memory(shape=unsigned(hi - lo), depth=len(chunk),
                              init=[(word >> lo) & mask for word in raw])
                m.submodules[f"bank{b}" if len(slices) == 1 else f"bank{b}_{g}"] = bank
                port = bank.read_port()
                m.d.comb += port.addr.eq(addrs[g][:bits])
                m.d.sync += (out if len(slices) == 1 else out[lo:hi]).eq(port.data)
            outs.append(_registered(m, out, self.bank_registers - 1))
        # the bank number travels with the read: one register per read stage
        sel = addrs[0][bits:]
        for k in range(1, self.bank_registers + 2):
            later = Signal(range(len(chunks)), name=f"sel{k}")
            m.d.sync += later.eq(sel)
            sel = later
        word = Array(outs)[sel] if len(outs) > 1 else outs[0]
        if self.decode is not None:
            word = self.decode[1](data.View(self.shape, word))
        m.d.sync += self.data.eq(word)
        return m


def _registered(m, signal, stages: int):
    """`signal` through `stages` more registers (no reset: they hold memory data), named
    after it. (The bank number's registers keep their own names, `sel1`, `sel2`, ..., as
    before, so that designs with one bank register stay byte-identical.)"""
    for k in range(stages):
        later = Signal.like(signal, name=f"{signal.name}_r{k + 1}", reset_less=True)
        m.d.sync += later.eq(signal)
        signal = later
    return signal


class LoadedRAM(wiring.Component):
    """A memory with no initial contents that reads as `BankedROM` does (`data` holds
    ``decode(word[addr])`` `latency(bank_registers)` edges after `addr`), once its words have
    come in through `load`, a byte a beat: word after word in address order, each word's bytes
    least significant first (`hwgen.rtl.plan.weight_image`). `loaded` rises once the last
    word is written; `load` then takes no more.

    One port: a word is written at the load's address as its last byte is taken, and read
    at `addr` otherwise (loading and reading never overlap: the datapath waits for
    `loaded`), so Yosys maps it to a single-port RAM: the iCE40 UP5K's SPRAM (which has no
    initial contents), block RAM elsewhere.

    Members
    -------
    addr : In(range(depth))
    data : Out(shape)
    load : In(stream.Signature(unsigned(beat)))
    loaded : Out(1)
    """

    def __init__(self, shape, depth: int, beat: int, *, decode=None, bank_registers: int = 1):
        self.shape, self.depth, self.beat, self.decode = shape, depth, beat, decode
        self.bank_registers = bank_registers
        self.beats = -(-Shape.cast(shape).width // beat)
        super().__init__({"addr": In(range(max(2, depth))),
                          "data": Out(shape if decode is None else decode[0]),
                          "load": In(stream.Signature(unsigned(beat))), "loaded": Out(1)})

    def elaborate(self, platform):
        m = Module()
        width, beat = Shape.cast(self.shape).width, self.beat
        m.submodules.ram = ram = Memory(shape=unsigned(width), depth=self.depth, init=[],
                                        attrs={LOADED_ATTR: "weights"})
        wr, rd = ram.write_port(), ram.read_port()

        # the load: bytes shift in from the top, and a word is written as its last byte is
        # taken, at the load's address (its read enable off then: the read data holds, as a
        # single-port RAM's does), else read at `addr`
        shift = Signal(beat * (self.beats - 1) or 1, name="load_shift")
        n_beat = Signal(range(self.beats), name="load_beat")
        w_addr = Signal(range(self.depth), name="load_addr")
        take = self.load.valid & ~self.loaded
        write = take & (n_beat == self.beats - 1)
        m.d.comb += self.load.ready.eq(~self.loaded)
        whole = Cat(shift, self.load.payload) if self.beats > 1 else self.load.payload
        with m.If(take):
            m.d.sync += [shift.eq(whole[beat:]), n_beat.eq(n_beat + 1)]
        with m.If(write):
            m.d.sync += [n_beat.eq(0), w_addr.eq(w_addr + 1)]
            with m.If(w_addr == self.depth - 1):
                m.d.sync += self.loaded.eq(1)
        addr = Signal(range(max(2, self.depth)), name="ram_addr")
        m.d.comb += [addr.eq(Mux(write, w_addr, self.addr)), wr.addr.eq(addr),
                     rd.addr.eq(addr), wr.data.eq(whole[:width]), wr.en.eq(write),
                     rd.en.eq(~write)]
        # the RAM's output straight into a register, as a ROM bank's
        q = Signal(width, name="ram_q", reset_less=True)
        m.d.sync += q.eq(rd.data)
        q = _registered(m, q, self.bank_registers - 1)
        out = q if self.decode is None else self.decode[1](data.View(self.shape, q))
        m.d.sync += self.data.eq(out)
        return m
