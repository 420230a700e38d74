"""The head's outputs: accumulator words, requantized, one output a beat on the stream."""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..interface import output_payload
from .arith import requantize
from .fanout import LANES_PER_COPY, REGION_LANES, copied, copies, copy_groups, spread

assert LANES_PER_COPY & (LANES_PER_COPY - 1) == 0   # a lane's group and offset are its bits


def pick_steps(lanes: int) -> int:
    """Registered steps of the lane pick: one P-to-1 multiplexer up to 8 lanes; above, each
    lane group picks its lane, then the group is picked (`fanout.copy_groups`); above one
    region of lanes each region first picks its group, then the region is picked."""
    return 1 + (copy_groups(lanes) > 1) + (copy_groups(lanes, REGION_LANES) > 1)


def output_cycles(groups: int, outputs: int, lanes: int = 1) -> int:
    """Cycles from `start` to `done` with an always-ready stream: per accumulator word a
    read and a wait (the word is registered before its lane is picked), per output the lane
    pick (`pick_steps`), the requantization and the send."""
    return 2 * groups + (2 + pick_steps(lanes)) * outputs


class HeadOutput(wiring.Component):
    """Sends the head's `outputs` values, word by word and lane by lane.

    Members
    -------
    start : In(1)   begin next cycle (the head's accumulators are final)
    acc_addr : Out  accumulator word to read (0 when idle: the read port is shared); above
        8 lanes a copy for each slice of the accumulator memory (`fanout.copied`)
    acc_word : In   the word read two edges earlier
    o : Out(stream.Signature(output_payload(out_fmt.width).layout()))
    done : Out(1)   the last output is taken this cycle
    """

    def __init__(self, head, lanes: int, acc_base: int, acc_width: int, acc_depth: int):
        self.head, self.lanes, self.acc_base, self.acc_depth = head, lanes, acc_base, acc_depth
        self.outputs = head.weight.shape[0]
        super().__init__({
            "start": In(1), "acc_addr": Out(copied(range(acc_depth), lanes)),
            "acc_word": In(data.ArrayLayout(signed(acc_width), lanes)),
            "o": Out(stream.Signature(output_payload(head.out_fmt.width).layout())),
            "done": Out(1),
        })

    def elaborate(self, platform):
        P, head, last = self.lanes, self.head, self.outputs - 1
        m = Module()
        out_idx = Signal(range(self.outputs + 1))
        lane = Signal(range(P + 1))
        word = Signal.like(self.acc_word[0])
        # the group's word: acc_base, then one a group (a copy for each slice of the
        # accumulator memory above 8 lanes, each gated by a copy of `reading`)
        grouped = copy_groups(P) > 1
        addr = copies(range(self.acc_depth), P, "addr")
        reading = copies(1, P, "reading")
        # the lane within its group, a copy for each group's pick: from the one `lane`, its
        # decode crossed the device into the groups' multiplexers (7 ns of routing at 64
        # lanes, the longest path once the block RAMs had their output registers)
        offsets = copies(range(LANES_PER_COPY), P, "offset") if grouped else []
        # The addressed word stays on the read port (and in acc_word a cycle later) for all
        # outputs of its group: the lane select reads the register, not the block RAM, and
        # rounding waits another cycle (Fmax).
        if grouped:
            m.d.comb += [self.acc_addr[g].eq(Mux(on, a, 0))
                         for g, (on, a) in enumerate(zip(reading, addr))]
            # The address and offset copies follow one register each, with no enable: the
            # state's decode and the lane compare into all their enables crossed the device
            # (11.9 ns at 128 lanes). The lane and the address move on as the lane is picked
            # (PICK); the word is read three cycles after at the earliest (ROUND, SEND, READ)
            # and a lane picked four (ROUND, SEND, LATCH, and REGION above one region). Above
            # one region the offsets take a copy per region first (`fanout.spread`): one
            # register into its copies beside every group's pick crossed the device (a net
            # of 6.4 ns at 128 lanes). The address goes back to the first word with the last
            # output.
            next_addr = Signal(range(self.acc_depth), init=self.acc_base)
            m.d.sync += [a.eq(next_addr) for a in addr]
            if pick_steps(P) == 2:
                m.d.sync += [o.eq(lane[:len(o)]) for o in offsets]
            else:
                spread(m, offsets, lane[:len(offsets[0])])
        else:
            m.d.comb += self.acc_addr.eq(Mux(reading[0], addr[0], 0))
        word_addr = next_addr if grouped else addr[0]   # the register that moves on

        def next_lane():
            """The lane, and at the word's end the address, move on."""
            with m.If(lane == P - 1):
                m.d.sync += [lane.eq(0), word_addr.eq(word_addr + 1)]
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
        with m.FSM(name="head_out"):
            with m.State("IDLE"):
                # the counters start over while idle, `start` or not: `start` (the sequencer's
                # state decode) then steers only the state, not every counter's enable (Fmax)
                m.d.sync += [out_idx.eq(0), lane.eq(0)]
                if not grouped:
                    m.d.sync += addr[0].eq(self.acc_base)
                with m.If(self.start):
                    m.d.sync += [on.eq(1) for on in reading]
                    m.next = "READ"
            with m.State("READ"):
                m.next = "WAIT"
            with m.State("WAIT"):
                m.next = "LATCH"
            if not grouped:
                with m.State("LATCH"):
                    m.d.sync += word.eq(Array(self.acc_word[n] for n in range(P))[lane])
                    m.next = "ROUND"
            else:
                # a P-to-1 multiplexer across the device in one cycle was the 64-lane
                # design's longest path: each lane group picks its lane, then the group
                # Each group's pick is taken every cycle, not only in LATCH: PICK reads the
                # one LATCH took, and the state's decode into every pick's enable crossed
                # the device (the 128-lane design's longest path, 11.7 ns).
                near = [Signal.like(word, name=f"near{g}") for g in range(len(addr))]
                for g, (pick, offset) in enumerate(zip(near, offsets)):
                    group = [self.acc_word[n] for n in range(g * LANES_PER_COPY,
                                                             min(P, (g + 1) * LANES_PER_COPY))]
                    m.d.sync += pick.eq(Array(group)[offset])
                group = lane >> (LANES_PER_COPY.bit_length() - 1)
                with m.State("LATCH"):
                    m.next = "PICK" if pick_steps(P) == 2 else "REGION"
                if pick_steps(P) == 2:
                    far = near
                else:
                    # the groups' picks across the device, one P/8-to-1 multiplexer, were the
                    # 128-lane design's longest path (11.7 ns): each region first picks its
                    # group (every cycle, as the groups do), then PICK the region
                    per = REGION_LANES // LANES_PER_COPY
                    far = [Signal.like(word, name=f"far{r}")
                           for r in range(copy_groups(P, REGION_LANES))]
                    for r, pick in enumerate(far):
                        region = Array(near[r * per:(r + 1) * per])
                        m.d.sync += pick.eq(region[group[:per.bit_length() - 1]])
                    group = lane >> (REGION_LANES.bit_length() - 1)
                    with m.State("REGION"):
                        m.next = "PICK"
                with m.State("PICK"):
                    m.d.sync += word.eq(Array(far)[group])
                    next_lane()
                    m.next = "ROUND"
            with m.State("ROUND"):
                m.d.sync += [self.o.payload.data.eq(requantize(word, head.acc_frac,
                                                               head.out_fmt)),
                             self.o.payload.last.eq(out_idx == last),
                             self.o.valid.eq(1), out_idx.eq(out_idx + 1)]
                # The word's lane is read (LATCH; above 8 lanes PICK moves the lane on): the
                # counters move on here, where no stream signal decides them (the output's
                # ready into the address copies' enables crossed the device, the 128-lane
                # design's longest path), and the read port is let go after the last output's
                # word.
                if not grouped:
                    next_lane()
                with m.If(out_idx == last):
                    m.d.sync += [on.eq(0) for on in reading]
                    if grouped:
                        m.d.sync += next_addr.eq(self.acc_base)
                m.next = "SEND"
            with m.State("SEND"):
                with m.If(self.o.ready):
                    m.d.sync += self.o.valid.eq(0)
                    with m.If(self.o.payload.last):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Elif(lane == 0):
                        m.next = "READ"
                    with m.Else():
                        m.next = "LATCH"
        return m
