"""The ACTIVATE phase's front: gate words out of the accumulators, one element a cycle out.

    MacArray (accumulator read port) -> ActivateEngine -(elements)-> element-wise unit

Two engines joined by two banks of registers. The gather engine reads the gate-block
words of a row group (one accumulator word per gate block of the cell, `lanes` elements
each) into a free bank; the issue engine sends `units` elements a cycle (E, one for each
element-wise unit; E divides the lanes) from a full bank, with their gate values, and
presents the address of their state (h, c) and element-wise vectors so that those words
(E elements each: `hwgen.rtl.plan`) reach the units with them. `issue_cycles` is this engine's
cycle model, cycle for cycle, tested against it.

Where a bank holds more than `PICK_LANES_UP_TO` beats (P/E), the bank being issued shifts
down E lanes a beat and the elements leave from its first lanes (`shifts_banks`): picking
lane `lane` from both banks is a 2P/E-to-1 multiplexer a bit, which at P = 32 was 3.9x the
logic of the shift (ECP5, the engine alone: 13517 LUT4 + 6402 PFUMX + 3259 L6MUX against
5932 LUT4 + 26 PFUMX, the same 6032 FF) and long wires. A few lanes pick: there the shift's
wider clock enable was the UP5K's longest path (49.8 -> 47.4 MHz on the default design).

A filled engine (`filled=True`: the ternary datapath) has no gather engine: its producer
writes the banks, row group by row group, and ACTIVATE runs beside the combine that makes
the words (`cycles.combine_activate_cycles`).

Above `fanout.LANES_PER_COPY` lanes (and wherever the banks shift) the banks' clock enables
reach thousands of gate registers (P = 64: 3 x 64 x 23 a bank), so they come from registers
copied per group of lanes (`hwgen.rtl.fanout`; `BANK_LANES_PER_COPY`): a gate word's capture
is a register set from its read (it is captured `GATHER_CAPTURE` edges later, always), and
the bank flags the shift needs have a copy per lane group. A few picking lanes decode the
capture from the gather state, as before. There too the issue engine's decision that a beat
ends its row group (which clears a bank flag and all its copies) is a register,
`last_beat`, set a beat ahead: the element count's compare behind it was the 64-lane
design's longest path (the count -> its compare -> the bank flags, 59 columns away).

Above one region of lanes (`fanout.REGION_LANES`) the engine takes `start` a cycle late
(`start_delay`): the sequencer's decode of `start` went straight into the read-address
copies of every slice (the 128-lane design's longest path, 11.5 ns with its lanes placed by
region); a copy of `start` and of the layer's first read address per region take it instead.
There each region also keeps a copy of the gather engine's control registers (`GatherControl`),
stepped by the same rules, and its read-address copies step on that copy's read decision: the
decision (the bank flags, the row group, the gate count) was 3-4 levels of logic into one net
to all 16 copies, the 128-lane design's longest path (11.2-11.7 ns with its lanes pinned).
"""
from __future__ import annotations

import math

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..design_folder import COPY_ATTR
from .fanout import (LANES_PER_COPY, REGION_LANES, copied, copies, copy_groups,
                     group_of, spread)

#: Beats a bank holds (P/E) up to which the issue engine picks its lane from both banks.
PICK_LANES_UP_TO = 8
#: Lanes whose gate registers one copy of a bank's enables (capture, full, shift) steers:
#: each copy's enable reaches those lanes' gate words (4 lanes x 4 gates x ~20 bits), and
#: at 8 lanes a copy that net was the 128-lane design's longest path (8.9 ns of routing).
BANK_LANES_PER_COPY = 4


def start_delay(lanes: int, filled: bool = False) -> int:
    """Edges from `start` to the engine's first step beyond one: 1 above one region of
    lanes (module docstring), where the banks are gathered (a filled engine starts with its
    producer)."""
    return int(copy_groups(lanes, REGION_LANES) > 1 and not filled)


def shifts_banks(lanes: int, units: int) -> bool:
    """True where the bank being issued shifts down instead (module docstring)."""
    return lanes // units > PICK_LANES_UP_TO


#: A gate word is captured this many edges after its read (the accumulator read port's
#: data is registered before it is used: `MacArray.acc_word`).
GATHER_CAPTURE = 2


def gather_cycles(n_blocks: int) -> int:
    """Cycles to gather a row group's gate words: one read a block, the last captured
    `GATHER_CAPTURE` cycles after its read (6 for the 4 blocks of LSTM and GRU)."""
    return n_blocks + GATHER_CAPTURE


def issue_cycles(hidden: int, lanes: int, n_blocks: int, units: int = 1) -> int:
    """Cycles from `start` to `done` (the last element issued), inclusive, of the engine
    (`start_delay` more above one region of lanes).

    The gather engine fills one of two banks with a row group's gate words
    (`gather_cycles`; the next group's reads start one or two cycles early when its bank is
    free, so one a block in steady state); the issue engine sends `units` elements a
    cycle from a full bank.
    """
    per_group = gather_cycles(n_blocks)
    groups = math.ceil(hidden / lanes)
    full = [False, False]
    g_grp = g_q = g_bank = i_bank = grp = lane = 0
    early = False
    cycles = 0
    while True:
        cycles += 1
        gather = g_grp < groups and not full[g_bank]
        issue = full[i_bank]
        set_full = clear_full = None
        if gather:
            next_free = g_grp + 1 < groups and not full[1 - g_bank]
            if g_q == per_group - 2:
                early, g_q = next_free, g_q + 1
            elif g_q == per_group - 1:
                g_q = 2 if early else int(next_free)
                early, set_full, g_bank, g_grp = False, g_bank, 1 - g_bank, g_grp + 1
            else:
                g_q += 1
        if issue:
            elem = grp * lanes + lane
            if lane == lanes - units or elem + units >= hidden:
                if grp == groups - 1:
                    return cycles
                lane, clear_full, i_bank, grp = 0, i_bank, 1 - i_bank, grp + 1
            else:
                lane += units
        if set_full is not None:
            full[set_full] = True
        if clear_full is not None:
            full[clear_full] = False


class GatherControl:
    """The gather engine's control registers: the engine's own, or a region's copy of them
    (module docstring). `full` is the pair of bank flags (an `Array`, indexed by bank)."""

    def __init__(self, layers, n_blocks: int, suffix: str = ""):
        # a copy (named with a suffix) is marked to stay apart in synthesis (`fanout`)
        self.suffix = suffix

        def reg(shape, base):
            return Signal(shape, name=f"{base}{suffix}", attrs={COPY_ATTR: 1} if suffix else {})
        self.running = reg(1, "running")
        self.layer = reg(range(len(layers)), "layer")
        self.act_q = reg(range(max(gather_cycles(lay.n_blocks) for lay in layers)), "act_q")
        self.early = reg(1, "early")   # the next row group's reads began a cycle before
        self.g_grp = reg(range(max(lay.gpg for lay in layers) + 1), "g_grp")
        self.g_bank = reg(1, "g_bank")
        self.full = Array([reg(1, "bank0_full"), reg(1, "bank1_full")])
        # the gate read next, in reading order (row group by row group, gate by gate)
        self.rd_q = reg(range(n_blocks), "rd_q")

    def begin(self, sel) -> list:
        """The statements that start layer `sel` (the bank flags stay: `elaborate`)."""
        return [self.layer.eq(sel), self.act_q.eq(0), self.early.eq(0), self.g_grp.eq(0),
                self.running.eq(1), self.rd_q.eq(0)]


class ActivateLayer:
    """What the engine needs of one layer: its sizes and memory bases."""

    def __init__(self, lp):
        self.hidden, self.gpg, self.n_blocks = lp.hidden_size, lp.groups_per_gate, lp.n_blocks
        self.acc_base, self.h_addr = lp.acc_base, lp.h_addr
        self.c_addr, self.ew_addr = lp.c_addr, lp.ew_addr
        self.acc_bank_stride = 0   # a second accumulator bank this far on (`Plan.overlap`)


def activate_layers(plan) -> list[ActivateLayer]:
    """The engine's layers of a plan: layer 0 of a design that overlaps steps has two
    accumulator banks."""
    layers = [ActivateLayer(lp) for lp in plan.layers]
    layers[0].acc_bank_stride = plan.acc_bank_stride
    return layers


def element_layout(layers, acc_width: int, units: int = 1) -> data.StructLayout:
    """`units` consecutive elements for the element-wise units: the first one's index, the
    layer, and each element's gate values (one element: its gate values alone)."""
    gates = data.ArrayLayout(signed(acc_width), max(lay.n_blocks for lay in layers))
    return data.StructLayout({
        "tag": range(max(lay.hidden for lay in layers) + units),
        "layer": range(len(layers) + 1),
        "gates": data.ArrayLayout(gates, units) if units > 1 else gates})


class ActivateEngine(wiring.Component):
    """Gathers layer `sel`'s gate words and issues its elements, `units` a cycle.

    Members
    -------
    start : In(1)   layer `sel` begins next cycle (`start_delay` cycles later) and runs until
        `finished` (the engine keeps its own running flag, so that its control does not wait
        on the sequencer's state)
    sel : In(range(layers))   the layer to begin, read with `start` (and kept in a register)
    bank : In(1)   its accumulator bank (a layer with two), read with `start`
    acc_addr : Out   accumulator word to read (0 when idle: the read port is shared); above
        8 lanes a copy for each slice of the accumulator memory (`fanout.copied`)
    acc_word : In    the word read `GATHER_CAPTURE` edges earlier
    h_addr, c_addr, ew_addr : Out   the state and vector addresses of the elements issued
        next (element addresses; the first of `units`, aligned to `units`)
    element : Out(stream.Signature(element_layout, always_ready=True))
    done : Out(1)   the layer's last element is issued this cycle
    finished : Out(1)   `done` a cycle later, a register (for the sequencer, and to stop:
        the cycle between is idle)
    fill, fill_gate, fill_last : In   filled=True only: the banks are written from outside
        instead of gathered (the ternary datapath's combiner makes the gate words row group
        by row group as ACTIVATE runs): a gate word, its gate and whether it ends its row
        group, with the word on `acc_word` `GATHER_CAPTURE` edges later (`acc_addr` stays 0)
    groups_issued : Out   filled=True only: row groups issued (a third group waits for one)
    """

    def __init__(self, layers: list[ActivateLayer], lanes: int, acc_width: int,
                 acc_depth: int, vector_depth: int, cell_depth: int, ew_depth: int,
                 units: int = 1, filled: bool = False):
        if lanes % units:
            raise ValueError(f"{units} element-wise units do not divide {lanes} lanes")
        self.layers, self.lanes, self.acc_width, self.units = layers, lanes, acc_width, units
        self.acc_addr_depth = acc_depth
        self.shifting = shifts_banks(lanes, units)
        self.filled = filled
        # gate words captured by registers copied per lane group (module docstring)
        self.capture_registered = self.shifting or copy_groups(lanes) > 1 or filled
        # the issue engine's "this beat ends the row group" from a register (module docstring)
        self.last_beat_registered = copy_groups(lanes) > 1
        self.start_registered = start_delay(lanes, filled) > 0
        self.layout = element_layout(layers, acc_width, units)
        members = {
            "start": In(1), "sel": In(range(len(layers))), "bank": In(1),
            "acc_addr": Out(copied(range(acc_depth), lanes)),
            "acc_word": In(data.ArrayLayout(signed(acc_width), lanes)),
            "h_addr": Out(range(vector_depth)), "c_addr": Out(range(cell_depth)),
            "ew_addr": Out(range(max(ew_depth, 2))),
            "element": Out(stream.Signature(self.layout, always_ready=True)),
            "done": Out(1), "finished": Out(1),
        }
        if filled:
            members.update(fill=In(1), fill_gate=In(range(max(lay.n_blocks for lay in layers))),
                           fill_last=In(1),
                           groups_issued=Out(range(max(lay.gpg for lay in layers) + 1)))
        super().__init__(members)

    def element_gates(self, j: int):
        """The gate values of element j of the `element` beat."""
        return self.element.payload.gates[j] if self.units > 1 else self.element.payload.gates

    def elaborate(self, platform):
        layers, P = self.layers, self.lanes
        m = Module()
        n_blocks = max(lay.n_blocks for lay in layers)
        max_h = max(lay.hidden for lay in layers)
        # two banks of gathered gate words: one is issued while the other is filled
        gate_regs = [[[Signal(signed(self.acc_width), name=f"gate{b}_{q}_{k}")
                       for k in range(P)] for q in range(n_blocks)] for b in range(2)]
        ctl = GatherControl(layers, n_blocks)
        full, g_bank, layer, running = ctl.full, ctl.g_bank, ctl.layer, ctl.running
        i_bank = Signal()
        lane = Signal(range(P + 1))
        grp = Signal(range(max(lay.gpg for lay in layers) + 1))
        elem = Signal(range(max_h + self.units))  # grp * P + lane, counted, not computed
        last_beat = Signal()  # the next beat issued ends its row group (where registered)
        out = self.element
        m.d.sync += out.valid.eq(0)
        # for the registered capture (`_banks`): a gate word is read, and the bank it goes to
        gate_read, read_bank = Signal(), Signal()
        # the address of the next gate word to read, in reading order: a register, so that
        # the read port's address does not wait on the gather engine's conditions; a copy
        # for each slice of the accumulator memory, each gated by a copy of `running`
        # (above 8 lanes), so that no one address net reaches every slice
        rd_addr = copies(range(self.acc_addr_depth), P, "rd_addr")
        start, sel, bank = self.start, self.sel, self.bank
        # the bank flags' copies the issue engine clears with the flags (`_clear_full`)
        self._region_fulls = []
        if self.start_registered:
            # `start` a cycle late (module docstring): the engine's own registers take a
            # copy; each region's gather control and read-address copies take their
            # region's copy of it and of the layer's first read
            start, sel = Signal(name="start_q"), Signal.like(sel, name="sel_q")
            bank = Signal(name="bank_q")
            m.d.sync += [start.eq(self.start), sel.eq(self.sel), bank.eq(self.bank)]
            region_starts = copies(1, P, "start_r", per=REGION_LANES)
            region_bases = copies(range(self.acc_addr_depth), P, "first_read_r",
                                  per=REGION_LANES)
            m.d.sync += [s.eq(self.start) for s in region_starts]
            m.d.sync += [b.eq(self._first_read(self.sel, self.bank)) for b in region_bases]
            region = [group_of(g * LANES_PER_COPY, REGION_LANES) for g in range(len(rd_addr))]
            copy_starts = [region_starts[r] for r in region]
            region_ctls = [GatherControl(layers, n_blocks, f"_r_c{r}")
                           for r in range(len(region_starts))]
            self._region_fulls = [c.full for c in region_ctls]
        else:
            copy_starts = [start] * len(rd_addr)
        if self.filled:
            pass   # no reads: `acc_addr` stays 0
        elif len(rd_addr) == 1:
            m.d.comb += self.acc_addr.eq(Mux(running, rd_addr[0], 0))
        else:
            reading = copies(1, P, "reading")   # each set as `running` is
            m.d.sync += [on.eq((s | on) & ~self.finished)
                         for on, s in zip(reading, copy_starts)]
            m.d.comb += [self.acc_addr[g].eq(Mux(on, addr, 0))
                         for g, (on, addr) in enumerate(zip(reading, rd_addr))]
        # the shifting banks' flags again, a copy per lane group (module docstring)
        full_copies = ([copies(1, P, f"bank{b}_full", per=BANK_LANES_PER_COPY) for b in range(2)]
                       if self.shifting else [])
        self._full_copies = [Array(pair) for pair in zip(*full_copies)]
        self._i_bank_copies = (copies(1, P, "i_bank", per=BANK_LANES_PER_COPY)
                               if self.shifting else [])
        # The bank flags and their copies are not set by `start`: a layer fills and issues
        # its row groups one for one, so it ends with both banks empty and the bank it
        # fills next equal to the one it issues next, as reset leaves them (`start` drove
        # every copy's clock enable: one net across the device, the 128-lane design's
        # longest path with the sequencer's decode in front of it).
        with m.If(start):
            m.d.sync += [*ctl.begin(sel), grp.eq(0), lane.eq(0), elem.eq(0)]
            with m.Switch(sel):
                for k, lay in enumerate(layers):
                    with m.Case(k):
                        if self.last_beat_registered:
                            m.d.sync += last_beat.eq(self._ends_group(lay, 0, 0))
                        if not self.filled and not self.start_registered:
                            # the gather's first read address
                            m.d.sync += [a.eq(self._layer_first_read(lay, bank))
                                         for a in rd_addr]
        if self.start_registered:
            for a, s, r in zip(rd_addr, copy_starts, region):
                with m.If(s):
                    m.d.sync += a.eq(region_bases[r])
            for r, (rctl, s) in enumerate(zip(region_ctls, region_starts)):
                with m.If(s):
                    m.d.sync += rctl.begin(sel)
        m.d.sync += self.finished.eq(self.done)
        with m.If(self.finished):
            m.d.sync += running.eq(0)
            if self.start_registered:
                m.d.sync += [rctl.running.eq(0) for rctl in region_ctls]
        with m.If(running):
            with m.Switch(layer):
                for k, lay in enumerate(layers):
                    with m.Case(k):
                        if not self.filled:   # a filled engine's banks come from outside
                            # the engine's own control steps the read-address copies where
                            # the regions' copies do not
                            self._gather(m, k, lay, ctl, gate_regs,
                                         [] if self.start_registered else rd_addr,
                                         [full] if self.start_registered
                                         else [full, *self._full_copies],
                                         gate_read, read_bank)
                        self._issue(m, k, lay, gate_regs, full, i_bank, lane, grp, elem,
                                    last_beat)
        if self.start_registered:
            for r, rctl in enumerate(region_ctls):
                with m.If(rctl.running):
                    with m.Switch(rctl.layer):
                        for k, lay in enumerate(layers):
                            with m.Case(k):
                                self._gather(m, k, lay, rctl, gate_regs,
                                             [a for a, g in zip(rd_addr, region) if g == r],
                                             [rctl.full, *(
                                                 c for n, c in enumerate(self._full_copies)
                                                 if group_of(n * BANK_LANES_PER_COPY,
                                                             REGION_LANES) == r)])
        if self.filled:
            # a filled group's last gate word: the next one goes to the other bank; its bank
            # is full when that word is captured (`_banks`)
            with m.If(self.fill & self.fill_last):
                m.d.sync += g_bank.eq(~g_bank)
            m.d.comb += self.groups_issued.eq(grp)
            self._banks(m, gate_regs, self.fill, self.fill_gate, g_bank, self.fill_last, full)
        elif self.capture_registered:
            self._banks(m, gate_regs, gate_read, ctl.rd_q, read_bank)
        return m

    def _first_read(self, sel, bank):
        """The accumulator word the gather reads first for layer `sel` in bank `bank`."""
        first = 0
        for k, lay in enumerate(self.layers):
            base = self._layer_first_read(lay, bank)
            first = base if k == 0 else Mux(sel == k, base, first)
        return first

    @staticmethod
    def _layer_first_read(lay, bank):
        """The word the gather reads first for layer `lay` in bank `bank`."""
        base = lay.acc_base
        return Mux(bank, base + lay.acc_bank_stride, base) if lay.acc_bank_stride else base

    def _set_full(self, full, bank, value) -> list:
        """Set bank `bank`'s full flag and its copies for the shift."""
        return [full[bank].eq(value), *(c[bank].eq(value) for c in self._full_copies)]

    def _clear_full(self, full, bank) -> list:
        """Clear bank `bank`'s full flag and all its copies (the issue engine: a region's
        gather control sets its own copy)."""
        return [*self._set_full(full, bank, 0), *(c[bank].eq(0) for c in self._region_fulls)]

    def _set_i_bank(self, i_bank, value) -> list:
        """Set the bank being issued and its copies."""
        return [i_bank.eq(value), *(c.eq(value) for c in self._i_bank_copies)]

    def _banks(self, m, gate_regs, read, rd_q, read_bank, read_last=None, full_flags=None):
        """The registered capture: a gate word read (`read`, gate `rd_q`, for bank
        `read_bank`) is captured `GATHER_CAPTURE` edges later into its bank, by a capture
        register set the cycle before (a copy per lane group). Shifting banks: the bank being
        issued shifts by E lanes each beat, so its next E elements are always in lanes
        0..E-1. Filled banks (`read_last`: the word is its row group's last) are set full
        as their last word is captured."""
        E, P = self.units, self.lanes
        valid, gate, bank_of, last = read, rd_q, read_bank, read_last
        # the read as the capture registers' region copies take it, an edge before the
        # capture (`spread`: one decode into 32 copies over the device was a 16 ns net at
        # 128 lanes)
        assert GATHER_CAPTURE >= 2
        for i in range(GATHER_CAPTURE - 1):
            later = (Signal(name=f"gather_read_d{i}"), Signal.like(rd_q, name=f"gather_q_d{i}"),
                     Signal(name=f"gather_bank_d{i}"), Signal(name=f"gather_last_d{i}"))
            m.d.sync += [later[0].eq(valid), later[1].eq(gate), later[2].eq(bank_of)]
            if read_last is not None:
                m.d.sync += later[3].eq(valid & last)
            early_valid, early_gate, early_bank = valid, gate, bank_of
            valid, gate, bank_of, last = later
        if read_last is not None:
            completes, completes_bank = Signal(name="fill_completes"), Signal(name="fill_bank")
            m.d.sync += [completes.eq(last), completes_bank.eq(bank_of)]
            for b in range(2):
                with m.If(completes & (completes_bank == b)):
                    m.d.sync += self._set_full(full_flags, b, 1)
        for b, bank in enumerate(gate_regs):
            # a full bank is issued exactly when it is `i_bank` (while running; no bank is
            # full otherwise): the enable waits on two registers, not on the issue test
            shifts = [Signal(name=f"bank{b}_shift_c{g}")
                      for g in range(copy_groups(P, BANK_LANES_PER_COPY) if self.shifting else 0)]
            m.d.comb += [shift.eq(full[b] & (i_bank == b)) for shift, full, i_bank
                         in zip(shifts, self._full_copies, self._i_bank_copies)]
            for q, word in enumerate(bank):
                captures = copies(1, P, f"capture{b}_{q}", per=BANK_LANES_PER_COPY)
                spread(m, captures, early_valid & (early_gate == q) & (early_bank == b),
                       per=BANK_LANES_PER_COPY)
                for n in range(P):
                    group = group_of(n, BANK_LANES_PER_COPY)
                    with m.If(captures[group]):
                        m.d.sync += word[n].eq(self.acc_word[n])
                    if self.shifting and n + E < P:
                        with m.Elif(shifts[group]):
                            m.d.sync += word[n].eq(word[n + E])

    def _ends_group(self, lay, lane, elem):
        """Whether the beat at `lane` of its row group, element `elem` of the layer, is the
        group's last: its last lanes, or the layer's last elements (`issue_cycles`)."""
        P, E = self.lanes, self.units
        return (lane == P - E) | (elem >= max(lay.hidden - E, 0))

    def _gather(self, m, k, lay, ctl, gate_regs, rd_addr, flags, gate_read=None,
                read_bank=None):
        """The gather engine of control `ctl` (its own, or a region's copy: then without
        `gate_read`): the gate-block words of row group g_grp into a free bank. Gate q is read
        at act_q == q and captured at act_q == q + GATHER_CAPTURE; the next group's first
        reads overlap the last captures when its bank is free. The reads take the gate words
        in order, one each: the read-address copies `rd_addr` step on to the next, and a
        filled bank's flag is set in `flags` (pairs of bank flags: the control's own, and the
        copies for the shift it steers)."""
        P, gpg, cycles = self.lanes, lay.gpg, gather_cycles(lay.n_blocks)
        act_q, early, g_grp, g_bank, full, rd_q = (ctl.act_q, ctl.early, ctl.g_grp,
                                                    ctl.g_bank, ctl.full, ctl.rd_q)
        central = gate_read is not None
        nxt_free = (g_grp + 1 < gpg) & ~full[~g_bank]
        read = Signal(name=f"gather_read{k}{ctl.suffix}")
        with m.If(read):
            with m.If(rd_q == lay.n_blocks - 1):   # the next row group's first gate
                m.d.sync += [rd_q.eq(0), *(a.eq(a + 1 - (lay.n_blocks - 1) * gpg)
                                           for a in rd_addr)]
            with m.Else():
                m.d.sync += [rd_q.eq(rd_q + 1), *(a.eq(a + gpg) for a in rd_addr)]
        with m.If((g_grp < gpg) & ~full[g_bank]):
            m.d.comb += read.eq(act_q < lay.n_blocks)
            m.d.sync += act_q.eq(act_q + 1)
            if central and self.capture_registered:
                # the reads from act_q == n_blocks on are the next row group's
                m.d.comb += [gate_read.eq(read),
                             read_bank.eq(g_bank ^ (act_q >= lay.n_blocks))]
            elif central:
                for b in range(2):
                    with m.If(g_bank == b):
                        with m.Switch(act_q):
                            for q in range(lay.n_blocks):
                                with m.Case(q + GATHER_CAPTURE):
                                    m.d.sync += [gate_regs[b][q][n].eq(self.acc_word[n])
                                                 for n in range(P)]
            with m.If(act_q == cycles - 2):
                m.d.sync += early.eq(nxt_free)
                m.d.comb += read.eq(nxt_free)                   # the next group's gate 0
            with m.If(act_q == cycles - 1):
                m.d.sync += [act_q.eq(0), early.eq(0), *(f[g_bank].eq(1) for f in flags),
                             g_bank.eq(~g_bank), g_grp.eq(g_grp + 1)]
                with m.If(early):
                    # its gate 1 (with one gate, a harmless read outside the order)
                    m.d.comb += read.eq(lay.n_blocks > 1)
                    m.d.sync += act_q.eq(2)
                with m.Elif(nxt_free):
                    m.d.comb += read.eq(1)
                    m.d.sync += act_q.eq(1)

    def _issue(self, m, k, lay, gate_regs, full, i_bank, lane, grp, elem, last_beat):
        P, E, gpg = self.lanes, self.units, lay.gpg
        out = self.element
        # issue engine: E elements a cycle from a full bank; h (and c, and the vectors)
        # are read now and reach the units with the gate values next cycle. The addresses
        # do not wait for the bank flag (a read is harmless; Fmax).
        m.d.comb += self.h_addr.eq(lay.h_addr + elem)
        if lay.c_addr is not None:
            m.d.comb += self.c_addr.eq(lay.c_addr + elem)
        if lay.ew_addr is not None:
            m.d.comb += self.ew_addr.eq(lay.ew_addr + elem)
        with m.If(full[i_bank]):
            m.d.sync += elem.eq(elem + E)
            if self.shifting:
                for j in range(E):
                    m.d.sync += [self.element_gates(j)[q].eq(
                        Mux(i_bank, gate_regs[1][q][j], gate_regs[0][q][j]))
                        for q in range(lay.n_blocks)]
            else:
                chunk = lane >> (E.bit_length() - 1)  # lane // E: E is a power of two
                for j in range(E):  # lane + j of the bank: element j of that chunk
                    m.d.sync += [self.element_gates(j)[q].eq(
                        Array(Array(gate_regs[b][q][c * E + j] for c in range(P // E))
                              for b in range(2))[i_bank][chunk])
                        for q in range(lay.n_blocks)]
            m.d.sync += [out.valid.eq(1), out.payload.tag.eq(elem), out.payload.layer.eq(k)]
            if self.last_beat_registered:
                # the decision for the next beat, from this one's registers: the compares
                # are a cycle ahead of their use, which fans out to the bank flags' copies
                next_lane = Mux(last_beat, 0, lane + E)
                m.d.sync += last_beat.eq(self._ends_group(lay, next_lane, elem + E))
                ends_group = last_beat
            else:
                ends_group = self._ends_group(lay, lane, elem)
            with m.If(ends_group):
                m.d.sync += [lane.eq(0), *self._clear_full(full, i_bank),
                             *self._set_i_bank(i_bank, ~i_bank), grp.eq(grp + 1)]
                with m.If(grp == gpg - 1):
                    m.d.comb += self.done.eq(1)
            with m.Else():
                m.d.sync += lane.eq(lane + E)
