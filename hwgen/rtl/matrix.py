"""The MATRIX phase's front: which columns fire, and the MAC issues they make.

    vector memory -> ColumnEncoder -(fired columns, a stream)-> MacIssuer -(issues)-> MacArray

The column encoder reads each column's value v_j (and, in a delta pass, its last-fired
value) one column a cycle, and queues the columns that fire with their delta (a dense pass
fires every column with delta = v_j). The MAC issuer pops a fired column and issues its
weight words, one a cycle. Skipped columns cost the issuer nothing, so the matrix cycles
follow the fired count.

Both serve every pass of a step (each layer, then the head): `sel` names the pass, and each
pass's constants (`PassSpec`) are elaborated under its own case.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..cells.base import accumulator_jumps, recurrent_only_runs
from ..qmodel import QModel
from .plan import Plan

QUEUE_DEPTH = 8
#: Edges from a column's read to its entry at the queue's head: the value read, the change
#: registered, the queue's write.
ENCODER_LATENCY = 3
#: Edges from a fired column at the queue's head to its first issue.
ISSUER_LATENCY = 1


class PassSpec:
    """Constants of one MATRIX pass (a layer or the head)."""

    def __init__(self, plan: Plan, k: int | None, qm: QModel):
        if k is None:  # the head: dense, one block, every column is the last layer's h
            hp = plan.head
            self.cols, self.x_cols, self.gpc = hp.in_size, 0, hp.groups
            self.w_base, self.b_base, self.acc_base = hp.w_base, hp.b_base, hp.acc_base
            self.x_addr, self.h_addr, self.hat_addr = 0, hp.h_addr, 0
            self.recurrent, self.gpg = False, hp.groups
            self.blocks_x = self.blocks_h = (0,)
            self.shift_x = self.shift_h = 0
            self.theta = None
            self.tokens = 0
            self.x_bank_stride = self.acc_bank_stride = 0
        else:
            lp, ql = plan.layers[k], qm.layers[k]
            self.cols, self.x_cols = lp.columns, lp.input_size
            self.gpc, self.gpg = lp.groups_per_col, lp.groups_per_gate
            self.blocks_x, self.blocks_h = lp.blocks_x, lp.blocks_h
            self.w_base, self.b_base, self.acc_base = lp.w_base, lp.b_base, lp.acc_base
            self.x_addr, self.h_addr, self.hat_addr = lp.x_addr, lp.h_addr, lp.hat_addr
            self.recurrent = True
            self.shift_x, self.shift_h = ql.shift_x, ql.shift_h
            self.theta = plan.delta[k] if plan.delta is not None else None
            # layer 0 of a design that overlaps steps: a second input and accumulator bank
            self.x_bank_stride = plan.x_bank_stride if k == 0 else 0
            self.acc_bank_stride = plan.acc_bank_stride if k == 0 else 0
            # a folded embedding: the pass visits token columns (`LayerPlan.token_columns`),
            # which stand for the V one-hot ones; a fired one adds +-1.0 of x_fmt
            self.tokens, self.vocab = lp.token_columns, lp.input_size
            if self.tokens:
                self.cols, self.x_cols = lp.visited_columns, self.tokens
                self.one = 1 << ql.x_fmt.frac

    @property
    def first_w_addr(self) -> int:
        """The weight word the encoder's counter starts from: the first column's, or, with
        token columns (each addressed by its token), the first recurrent column's less the
        token columns' steps."""
        if self.tokens:
            return self.w_base + (self.vocab - self.x_cols) * self.gpc
        return self.w_base

    @property
    def is_delta(self) -> bool:
        return self.theta is not None

    @property
    def banked(self) -> bool:
        """The pass reads its input in one of two banks (and, where the design has them,
        adds into its accumulators in one of two: `acc_banked`)."""
        return self.x_bank_stride > 0

    @property
    def acc_banked(self) -> bool:
        return self.acc_bank_stride > 0

    def acc_offset(self, q, is_h):
        """Accumulator word of the column's q-th group: past a block its side skips, the
        word lies that many blocks further (GRU h columns skip the n_x block)."""
        offset = q
        for side, blocks in ((~is_h, self.blocks_x), (is_h, self.blocks_h)):
            for position, extra in accumulator_jumps(blocks):
                offset = Mux(side & (q >= position * self.gpg), q + extra * self.gpg, offset)
        return offset

    def first_touch(self, col, q, is_h):
        """True where a dense pass first adds into a word: start from the bias there.

        Column 0 (an input column) first touches every block input columns feed; the first
        recurrent column the blocks only recurrent columns feed (GRU n_h).
        """
        touch = col == 0
        for start, stop in recurrent_only_runs(self.blocks_x, self.blocks_h):
            later = (col == self.x_cols) & (q >= start * self.gpg)
            if stop < len(self.blocks_h):
                later = later & (q < stop * self.gpg)
            touch = touch | later
        return touch


def passes_of(plan: Plan, qm: QModel) -> list[PassSpec]:
    """The passes of a step: each layer, then the head (last)."""
    return [PassSpec(plan, k, qm) for k in range(len(plan.layers))] + [PassSpec(plan, None, qm)]


def pass_shifts(passes) -> list[int]:
    """The alignment shifts a MAC issue picks from (by index): 0 and every pass's x and h
    shifts. One list for the issuer, which sends the index, and the MAC array, which shifts."""
    return sorted({0} | {p.shift_x for p in passes} | {p.shift_h for p in passes})


def fired_column_layout(plan: Plan, passes) -> data.StructLayout:
    """A fired column: its first weight word, its index, its side, and its delta."""
    return data.StructLayout({"w_addr": range(len(plan.weight_words) + 1),
                              "col": range(max(p.cols for p in passes) + 1), "is_h": 1,
                              "delta": signed(plan.value_width + 1)})


class ColumnEncoder(wiring.Component):
    """Reads the columns of pass `sel` and queues those that fire.

    Members
    -------
    start : In(1)   pass `sel` begins next cycle (its first column, its first weight word)
    sel : In(range(passes))   the pass to begin, read with `start` (between passes the
        first column's registers follow it: it must name the pass in the cycle of `start`)
    pass_now : Out(range(passes))   the pass begun last (a register: the pass's constants
        are selected by it, not by the sequencer's state)
    (the pass runs from `start` until `done`: columns are read while the queue has room; the
    encoder keeps its own flag of columns left to read, so that its control waits on neither
    the sequencer's state nor a compare of the column counter)
    fresh : In(1)   first step of a sequence: h and the last-fired values read as zero
    bank : In(1)   the input and accumulator bank of the pass to begin (a banked pass:
        `PassSpec.banked`), read with `start`; `bank_now` the pass's (a register)
    hold_h : In(1)   do not read recurrent columns yet (the input columns of the next
        step run while this step's h is still being made); with `plan.early_passes`, read
        only the columns below `h_ready` (the pass began under an ACTIVATE: their h, or
        input, is written)
    h_ready : In   `plan.early_passes` only
    value_addr : Out   vector-memory address of the column read now
    value : In     the word read at `value_addr` a cycle earlier
    last_addr, last : the same for the last-fired memory (delta passes)
    last_write : Out(addr, data, en)   a fired column's value, remembered
    columns : Out(stream.Signature(fired_column_layout))
    done : Out(1)   every column read and the queue empty
    token, last_token : In   this step's and the previous step's token (only with a pass of
        token columns: a folded embedding)
    """

    def __init__(self, plan: Plan, passes: list[PassSpec]):
        self.plan, self.passes = plan, passes
        self.entry = fired_column_layout(plan, passes)
        value = signed(plan.value_width)
        tokens = {}
        for ps in passes:
            if ps.tokens:
                tokens = {"token": In(range(ps.vocab)), "last_token": In(range(ps.vocab))}
        super().__init__({**tokens,
            "start": In(1), "sel": In(range(len(passes))), "fresh": In(1),
            "pass_now": Out(range(len(passes))), "bank": In(1), "bank_now": Out(1),
            "hold_h": In(1),
            **({"h_ready": In(range(max(p.cols for p in passes) + plan.units + 1))}
               if plan.early_passes
               else {}),
            "value_addr": Out(range(plan.vector_depth)), "value": In(value),
            "last_addr": Out(range(plan.hat_depth)), "last": In(value),
            "last_write": Out(data.StructLayout({"addr": range(plan.hat_depth),
                                                 "data": value, "en": 1})),
            "columns": Out(stream.Signature(self.entry)),
            "done": Out(1),
        })

    def _token_columns(self, m, ps, reading, col, w_addr, e1, e2):
        """A folded embedding's token columns, in place of the V one-hot ones. Column 0 is
        the token (dense), or in a delta pass the previous token (-1.0; on a sequence's
        first step it fires with 0, to start the words from the bias) and column 1 the
        token (+1.0); they fire when the token changed."""
        is_delta = ps.is_delta
        with m.If(reading & (col < ps.x_cols)):
            tok = Mux(col == 0, self.last_token, self.token) if is_delta else self.token
            m.d.sync += e1.w_addr.eq(ps.w_base + tok * ps.gpc)
        token_col = ~e1.is_h & (e1.col < ps.x_cols)
        with m.If(token_col):
            if is_delta:
                old = Mux(self.fresh, 0, -ps.one)
                m.d.sync += e2.change.eq(Mux(e1.col == 0, old, ps.one))
            else:
                m.d.sync += e2.change.eq(ps.one)
        changed = self.fresh | (self.token != self.last_token)
        return ~e2.is_h & (e2.col < ps.x_cols), changed

    @staticmethod
    def _value_addr(ps, col: int, bank):
        """The vector-memory address of pass `ps`'s column `col` (a constant), in `bank`."""
        if col >= ps.x_cols:
            return ps.h_addr + col - ps.x_cols
        x_addr = (Mux(bank, ps.x_addr + ps.x_bank_stride, ps.x_addr)
                  if ps.banked else ps.x_addr)
        return x_addr + col

    def elaborate(self, platform):
        plan, entry = self.plan, self.entry
        m = Module()
        m.submodules.queue = queue = fifo.SyncFIFO(width=entry.size, depth=QUEUE_DEPTH)
        m.d.comb += [self.columns.valid.eq(queue.r_rdy), self.columns.payload.eq(queue.r_data),
                     queue.r_en.eq(self.columns.ready)]
        max_cols = max(p.cols for p in self.passes)
        col = Signal(range(max_cols + 1))
        w_addr = Signal(range(len(plan.weight_words) + 1))
        e1 = Signal(data.StructLayout({"valid": 1, "col": range(max_cols + 1), "is_h": 1,
                                       "w_addr": range(len(plan.weight_words) + 1)}))
        e2 = Signal(data.StructLayout({"valid": 1, "col": range(max_cols + 1), "is_h": 1,
                                       "w_addr": range(len(plan.weight_words) + 1),
                                       "value": signed(plan.value_width),
                                       "change": signed(plan.value_width + 1)}))
        pushed = Signal(entry)
        m.d.comb += queue.w_data.eq(pushed)
        m.d.sync += e1.valid.eq(0)
        # two reads in flight: room for them and the next. `held` counts the queued entries
        # and the reads in flight (the queue's level + e1.valid + e2.valid), kept as a
        # register of its own so that `room` is one compare of it
        held = Signal(range(QUEUE_DEPTH + 3))
        launch = Signal()
        m.d.sync += held.eq(held + launch - (queue.r_en & queue.r_rdy)
                            - (e2.valid & ~queue.w_en))
        room = held < QUEUE_DEPTH - 1
        fresh = self.fresh
        # started and col < the pass's columns: a register, cleared as the last column is
        # read, so that a read's launch (the first stage's clock enables) is one AND (Fmax)
        reading = Signal()
        # the next column is a recurrent one of a banked pass (a register, as `reading`):
        # `hold_h` keeps it back
        at_h = Signal()
        if plan.early_passes:
            m.d.comb += launch.eq(reading & room & ~(self.hold_h & (col >= self.h_ready)))
        elif any(ps.banked for ps in self.passes):
            m.d.comb += launch.eq(reading & room & ~(self.hold_h & at_h))
        else:
            m.d.comb += launch.eq(reading & room)
        # every column read (not `reading`), none in flight and none queued (`held` == 0):
        # from registers, as the sequencer's transition waits on it
        m.d.comb += self.done.eq(~reading & (held == 0))
        # between passes the first column's registers follow `sel` (which the sequencer
        # sets for any cycle of the state that starts a pass), so that `start`, which waits
        # on the MAC array's idle flag, drives only `reading` and the pass's registers: not
        # the weight address (the 64-lane design's longest path ran from the sequencer's
        # state through that decode into `w_addr`)
        # the value address of column `col`, a register that steps with it: the vector
        # memory's read address from an adder (and the memory's word mux behind it, where
        # the memory is small enough to be registers) was the 128-lane design's longest path
        v_addr = Signal.like(self.value_addr)
        m.d.comb += self.value_addr.eq(v_addr)
        with m.If(~reading):
            m.d.sync += [col.eq(0), at_h.eq(0)]
            with m.Switch(self.sel):
                for k, ps in enumerate(self.passes):
                    with m.Case(k):
                        m.d.sync += [w_addr.eq(ps.first_w_addr),
                                     v_addr.eq(self._value_addr(ps, 0, self.bank))]
        with m.If(self.start):
            m.d.sync += [self.pass_now.eq(self.sel), self.bank_now.eq(self.bank),
                         reading.eq(1)]
        with m.Switch(self.pass_now):
            for k, ps in enumerate(self.passes):
                with m.Case(k):
                    # stage 0: read the next column's value (and last-fired value)
                    is_h0 = col >= ps.x_cols
                    if ps.is_delta:
                        m.d.comb += self.last_addr.eq(ps.hat_addr + col)
                    if ps.banked and not plan.early_passes:
                        with m.If(launch):
                            m.d.sync += at_h.eq(col >= ps.x_cols - 1)
                    with m.If(launch):
                        m.d.sync += [e1.valid.eq(1), e1.col.eq(col), e1.is_h.eq(is_h0),
                                     e1.w_addr.eq(w_addr), col.eq(col + 1),
                                     w_addr.eq(w_addr + ps.gpc),
                                     reading.eq(col != ps.cols - 1)]
                        # the next column's: the first recurrent one after the inputs
                        m.d.sync += v_addr.eq(Mux(col == ps.x_cols - 1, ps.h_addr, v_addr + 1))
                    # stage 1: the change since the column last fired (delta passes)
                    value = Mux(e1.is_h & fresh, 0, self.value) if ps.recurrent else self.value
                    last = Mux(fresh, 0, self.last) if ps.is_delta else 0
                    m.d.sync += [e2.valid.eq(e1.valid), e2.col.eq(e1.col),
                                 e2.is_h.eq(e1.is_h), e2.w_addr.eq(e1.w_addr),
                                 e2.value.eq(value), e2.change.eq(value - last)]
                    if ps.tokens:
                        token_col, changed = self._token_columns(m, ps, reading, col, w_addr,
                                                                 e1, e2)
                    # stage 2: fire, queue, remember what fired
                    if ps.is_delta:
                        tx, th = (max(t, 1) for t in ps.theta)
                        # |change| >= theta as two compares side by side, not a negation
                        # then a compare in a row (the UP5K's longest path in delta designs)
                        theta = Mux(e2.is_h, th, tx)
                        fire = fresh | (e2.change >= theta) | (e2.change <= -theta)
                        m.d.comb += [self.last_write.addr.eq(ps.hat_addr + e2.col),
                                     self.last_write.data.eq(e2.value),
                                     self.last_write.en.eq(e2.valid & fire)]
                        if ps.tokens:  # no threshold: a changed token fires; no value kept
                            fire = Mux(token_col, changed, fire)
                            m.d.comb += self.last_write.en.eq(e2.valid & fire & ~token_col)
                    else:
                        fire = 1
                    m.d.comb += queue.w_en.eq(e2.valid & fire)
        m.d.comb += [pushed.w_addr.eq(e2.w_addr), pushed.col.eq(e2.col),
                     pushed.is_h.eq(e2.is_h), pushed.delta.eq(e2.change)]
        return m


class MacIssuer(wiring.Component):
    """Issues a fired column's weight words into the MAC array, one a cycle.

    Members
    -------
    sel : In(range(passes))   the pass
    bank : In(1)   its accumulator bank (a banked pass: `PassSpec.banked`)
    fresh : In(1)   first step of a sequence (a delta pass starts its words from the bias)
    columns : In(stream.Signature(fired_column_layout))
    issue : Out(stream.Signature(mac_array.issue_layout, always_ready=True))
    busy : Out(1)   a column's words are being issued
    """

    def __init__(self, plan: Plan, passes: list[PassSpec], issue_layout):
        self.plan, self.passes = plan, passes
        self.entry = fired_column_layout(plan, passes)
        self.shifts = pass_shifts(passes)
        w_addr = issue_layout.members["w_addr"]
        self.w_addr_copies = w_addr.length if isinstance(w_addr, data.ArrayLayout) else 1
        super().__init__({
            "sel": In(range(len(passes))), "fresh": In(1), "bank": In(1),
            "columns": In(stream.Signature(self.entry)),
            "issue": Out(stream.Signature(issue_layout, always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cur = Signal(self.entry)
        active = Signal()
        grp = Signal(range(max(p.gpc for p in self.passes) + 1))
        shifts = self.shifts
        # grp == gpc - 1, kept as a register stepped with grp: `columns.ready` then waits on
        # no compare and no pass decode (it drives the queue's read enable; Fmax)
        last_word = Signal()
        m.d.comb += [self.busy.eq(active), self.issue.valid.eq(active),
                     self.columns.ready.eq(~active | last_word)]
        with m.Switch(self.sel):
            for k, ps in enumerate(self.passes):
                with m.Case(k):
                    acc_off = ps.acc_offset(grp, cur.is_h)
                    acc_base = (Mux(self.bank, ps.acc_base + ps.acc_bank_stride, ps.acc_base)
                                if ps.acc_banked else ps.acc_base)
                    bias_ok = self.fresh if ps.is_delta else 1
                    if self.w_addr_copies == 1:
                        m.d.comb += self.issue.payload.w_addr.eq(cur.w_addr + grp)
                    m.d.comb += [
                        self.issue.payload.acc_addr.eq(acc_base + acc_off),
                        self.issue.payload.b_addr.eq(ps.b_base + acc_off),
                        self.issue.payload.delta.eq(cur.delta),
                        self.issue.payload.bias.eq(bias_ok & ps.first_touch(cur.col, grp,
                                                                            cur.is_h)),
                        self.issue.payload.shift.eq(Mux(cur.is_h, shifts.index(ps.shift_h),
                                                        shifts.index(ps.shift_x)))]
                    with m.If(active & ~last_word):
                        m.d.sync += [grp.eq(grp + 1), last_word.eq(grp == ps.gpc - 2)]
                    with m.Elif(self.columns.ready):
                        # the next column, if one is queued, follows without a gap
                        m.d.sync += [grp.eq(0), active.eq(self.columns.valid),
                                     cur.eq(self.columns.payload),
                                     last_word.eq(ps.gpc == 1)]
        if self.w_addr_copies > 1:
            # the weight address as registers (cur.w_addr + grp, kept), one per slice of the
            # ROM's block RAMs: each copy counts from its own value, so no synthesis tool
            # merges them back into one register driving every block RAM
            copies = [Signal(range(len(self.plan.weight_words) + 1), name=f"w_addr{g}")
                      for g in range(self.w_addr_copies)]
            m.d.comb += [self.issue.payload.w_addr[g].eq(c) for g, c in enumerate(copies)]
            with m.If(active & ~last_word):
                m.d.sync += [c.eq(c + 1) for c in copies]
            with m.Elif(self.columns.ready):
                m.d.sync += [c.eq(self.columns.payload.w_addr) for c in copies]
        return m
