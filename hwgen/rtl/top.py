"""The accelerator top level: streams in, sequencer, MAC lanes, memories, streams out.

Per time step: LOAD the I input elements; for each layer, MATRIX then ACTIVATE; then, when
the head applies, HEAD (the same MAC lanes over the head's weights) and OUTPUT.

MATRIX runs two machines joined by a small FIFO of fired columns:

* the column encoder reads each column's value v_j (and, for delta networks, its
  last-fired value) one column a cycle, and pushes the columns that fire with their delta
  (dense designs fire every column with delta = v_j);
* the MAC issuer pops a fired column and streams its weight words, one a cycle, into the
  lanes. Skipped columns cost the issuer nothing, so cycles follow the fired count.

MAC pipeline: the issuer reads a weight word; stage 1 multiplies it by the column's delta
while the bias and accumulator words are read; stage 2 shifts the products into
accumulator alignment and adds (read-modify-write through a read port transparent for the
write port, so back-to-back updates of one word are exact).

ACTIVATE gathers the gate words of a row group (one per gate block of the cell), then feeds
one element a cycle into the pipelined element-wise unit, whose results are written back to
h (and c).

What differs between cells comes from the cell's description (`hwgen.cells`) through the
plan: the blocks each side's columns visit (hence the accumulator jumps and where the bias
is first added), whether there are recurrent columns at all (SRU has none: its passes
visit the input columns only), the number of gate words gathered, the cell state, the
element-wise vectors (a ROM read by element, `Plan.ew_words`), the element-wise unit and
its latency. Still shaped by LSTM and GRU: one cell-state memory (c), both sides, where
both exist, visiting equally many blocks (one weight-word step per column), and every
block fed by some matrix (its bias is loaded on the first column touching it).
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..cells.base import accumulator_jumps, recurrent_only_runs
from ..interface import input_payload, output_payload
from ..qmodel import QModel
from .arith import requantize
from .elementwise import ElementwiseUnit
from .plan import GATHER_CAPTURE, Plan, make_plan
from .rom import LATENCY as ROM_LATENCY, BankedROM

FIFO_DEPTH = 8


class _Pass:
    """Constants of one MATRIX pass (a layer or the head), as the sequencer needs them."""

    def __init__(self, plan: Plan, k: int | None, qm: QModel):
        if k is None:  # the head: dense, one block, every column is the last layer's h
            hp = plan.head
            self.name, self.cols, self.x_cols, self.gpc = "HEAD", hp.in_size, 0, hp.groups
            self.w_base, self.b_base, self.acc_base = hp.w_base, hp.b_base, hp.acc_base
            self.x_addr, self.h_addr, self.hat_addr = 0, hp.h_addr, 0
            self.recurrent, self.gpg = False, hp.groups
            self.blocks_x = self.blocks_h = (0,)
            self.shift_x = self.shift_h = 0
            self.theta = None
        else:
            lp, ql = plan.layers[k], qm.layers[k]
            self.name, self.cols, self.x_cols = f"MAT{k}", lp.columns, lp.input_size
            self.gpc, self.gpg = lp.groups_per_col, lp.groups_per_gate
            self.blocks_x, self.blocks_h = lp.blocks_x, lp.blocks_h
            self.w_base, self.b_base, self.acc_base = lp.w_base, lp.b_base, lp.acc_base
            self.x_addr, self.h_addr, self.hat_addr = lp.x_addr, lp.h_addr, lp.hat_addr
            self.recurrent = True
            self.shift_x, self.shift_h = ql.shift_x, ql.shift_h
            self.theta = plan.delta[k] if plan.delta is not None else None

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


class Accelerator(wiring.Component):
    """Recurrent-network accelerator for a quantized model.

    Parameters
    ----------
    qm : QModel
    lanes : number of MAC lanes P (1..32).
    delta : None (dense) or [(theta_x, theta_h)] per layer: a delta network.

    Members
    -------
    i : In(stream.Signature(input_payload(input width).layout()))   (`hwgen.interface`)
    o : Out(stream.Signature(output_payload(output width).layout()))
    """

    def __init__(self, qm: QModel, lanes: int, delta=None):
        self.qm = qm
        self.plan: Plan = make_plan(qm, lanes, delta)
        super().__init__({
            "i": In(stream.Signature(input_payload(qm.input_fmt.width).layout())),
            "o": Out(stream.Signature(output_payload(qm.head.out_fmt.width).layout())),
        })

    def elaborate(self, platform):
        qm, plan = self.qm, self.plan
        P = plan.lanes
        is_delta = plan.delta is not None
        has_c = any(lp.c_addr is not None for lp in plan.layers)
        m = Module()

        # ---- memories
        lanes_of = lambda width: data.ArrayLayout(signed(width), P)  # noqa: E731
        w_rom = BankedROM(lanes_of(plan.weight_width), plan.weight_words.tolist())
        b_mem = Memory(shape=lanes_of(plan.acc_width), depth=len(plan.bias_words),
                       init=plan.bias_words.tolist())
        acc_mem = Memory(shape=lanes_of(plan.acc_width), depth=plan.acc_depth, init=[])
        v_mem = Memory(shape=signed(plan.value_width), depth=plan.vector_depth, init=[])
        m.submodules.w_rom, m.submodules.b_mem = w_rom, b_mem
        m.submodules.acc_mem, m.submodules.v_mem = acc_mem, v_mem
        self.debug_memories = {"v": v_mem, "acc": acc_mem}
        b_rd = b_mem.read_port()
        acc_wr = acc_mem.write_port()
        acc_rd = acc_mem.read_port()
        v_wr, v_rd = v_mem.write_port(), v_mem.read_port()
        if has_c:
            m.submodules.c_mem = c_mem = Memory(shape=signed(plan.cell_width),
                                                depth=plan.cell_depth, init=[])
            c_wr, c_rd = c_mem.write_port(), c_mem.read_port()
        if plan.ew_words is not None:  # element-wise vectors, one word per element
            m.submodules.ew_rom = ew_rom = Memory(
                shape=data.ArrayLayout(signed(plan.ew_width), plan.ew_words.shape[1]),
                depth=len(plan.ew_words), init=plan.ew_words.tolist())
            ew_rd = ew_rom.read_port()
        if is_delta:
            m.submodules.hat_mem = hat_mem = Memory(shape=signed(plan.value_width),
                                                    depth=plan.hat_depth, init=[])
            hat_wr, hat_rd = hat_mem.write_port(), hat_mem.read_port()

        passes = [_Pass(plan, k, qm) for k in range(len(plan.layers))] + \
            [_Pass(plan, None, qm)]
        max_cols = max(p.cols for p in passes)
        max_gpc = max(p.gpc for p in passes)
        delta_w = plan.value_width + 1
        shifts = sorted({0} | {p.shift_x for p in passes} | {p.shift_h for p in passes})

        fresh = Signal(init=1)      # first step of a sequence: h and c read as zero
        seq_end = Signal()          # the step being computed ends its sequence

        # ---- column encoder -> FIFO -> MAC issuer
        entry = data.StructLayout({"w_addr": range(len(plan.weight_words) + 1),
                                   "col": range(max_cols + 1), "is_h": 1,
                                   "delta": signed(delta_w)})
        m.submodules.fifo = col_fifo = fifo.SyncFIFO(width=entry.size, depth=FIFO_DEPTH)
        pushed = Signal(entry)
        popped = data.View(entry, col_fifo.r_data)
        m.d.comb += col_fifo.w_data.eq(pushed)
        enc_col = Signal(range(max_cols + 1))
        enc_w = Signal(range(len(plan.weight_words) + 1))
        e1 = Signal(data.StructLayout({"valid": 1, "col": range(max_cols + 1), "is_h": 1,
                                       "w_addr": range(len(plan.weight_words) + 1)}))
        cur = Signal(entry)
        cur_active = Signal()
        grp = Signal(range(max_gpc + 1))
        e2 = Signal(data.StructLayout({"valid": 1, "col": range(max_cols + 1), "is_h": 1,
                                       "w_addr": range(len(plan.weight_words) + 1),
                                       "value": signed(plan.value_width),
                                       "change": signed(delta_w)}))
        m.d.sync += e1.valid.eq(0)

        # ---- MAC pipeline registers
        s1 = Signal(data.StructLayout({"valid": 1, "acc_addr": range(plan.acc_depth),
                                       "b_addr": range(len(plan.bias_words)), "bias": 1,
                                       "delta": signed(delta_w),
                                       "shift": range(len(shifts))}))
        s2 = Signal(data.StructLayout({"valid": 1, "acc_addr": range(plan.acc_depth),
                                       "bias": 1, "shift": range(len(shifts))}))
        prods = [Signal(signed(plan.weight_width + delta_w), name=f"prod{k}")
                 for k in range(P)]
        m.d.sync += s1.valid.eq(0)

        # stages 1, 1a: the weight word comes out of its banks (block RAM output straight
        # into a multiplexer or a multiplier would be the longest path)
        s1a, s1b = Signal.like(s1), Signal.like(s1)
        w_word = w_rom.data
        assert ROM_LATENCY == 3  # s1, s1a, s1b
        m.d.sync += [s1a.eq(s1), s1b.eq(s1a)]
        # stage 1b: multiply; read the bias and accumulator words
        m.d.sync += [prods[k].eq(w_word[k] * s1b.delta) for k in range(P)]
        m.d.sync += [s2.valid.eq(s1b.valid), s2.acc_addr.eq(s1b.acc_addr), s2.bias.eq(s1b.bias),
                     s2.shift.eq(s1b.shift)]
        m.d.comb += b_rd.addr.eq(s1b.b_addr)
        act_acc_addr = Signal.like(acc_rd.addr)
        m.d.comb += acc_rd.addr.eq(Mux(s1b.valid, s1b.acc_addr, act_acc_addr))

        # stage 2: register the accumulator and bias words and align the products (block
        # RAM output straight into the adder would be the longest path)
        s3 = Signal.like(s2)
        m.d.sync += s3.eq(s2)
        acc_q = Signal.like(acc_rd.data)
        bias_q = Signal.like(b_rd.data)
        m.d.sync += [acc_q.eq(acc_rd.data), bias_q.eq(b_rd.data)]
        # nothing left in the MAC pipeline
        mac_idle = ~s1.valid & ~s1a.valid & ~s1b.valid & ~s2.valid & ~s3.valid

        # stage 3: accumulate (a product with a delta may exceed the accumulator's range
        # alone; the sum never does). The word read for this update missed the writes of
        # the two updates before it (the read port is not transparent, so that the block
        # RAM output goes straight into acc_q: Fmax): forward the newest of those sums that
        # hit the same word. The choice among bias, forwarded sums and acc_q is made a stage
        # early, so stage 3 holds one 4-way mux and the adder.
        BIAS, FWD1, FWD2, STORED = range(4)
        pick = Signal(range(4))
        last = Signal(data.StructLayout({"valid": 1, "acc_addr": range(plan.acc_depth)}))
        last_sum, last_sum2 = Signal.like(acc_wr.data), Signal.like(acc_wr.data)
        m.d.comb += [acc_wr.addr.eq(s3.acc_addr), acc_wr.en.eq(s3.valid)]
        m.d.sync += [last.valid.eq(s3.valid), last.acc_addr.eq(s3.acc_addr),
                     last_sum.eq(acc_wr.data), last_sum2.eq(last_sum)]
        with m.If(s2.bias):
            m.d.sync += pick.eq(BIAS)
        with m.Elif(s3.valid & (s3.acc_addr == s2.acc_addr)):
            m.d.sync += pick.eq(FWD1)   # the update one ahead: written this cycle
        with m.Elif(last.valid & (last.acc_addr == s2.acc_addr)):
            m.d.sync += pick.eq(FWD2)   # two ahead: written as this one's word was read
        with m.Else():
            m.d.sync += pick.eq(STORED)
        for k in range(P):
            aligned = Signal(signed(plan.acc_width + 1), name=f"aligned{k}")
            with m.Switch(s2.shift):
                for idx, sh in enumerate(shifts):
                    with m.Case(idx):
                        m.d.sync += aligned.eq(prods[k] << sh)
            base = Array([bias_q[k], last_sum[k], last_sum2[k], acc_q[k]])[pick]
            m.d.comb += acc_wr.data[k].eq(base + aligned)

        def matrix(ps: _Pass, next_state: str):
            """One cycle of a MATRIX pass: encoder, issuer, and the end-of-pass check."""
            # encoder stage 0: read the next column's value (and last-fired value)
            room = col_fifo.level + e1.valid + e2.valid < FIFO_DEPTH - 1
            is_h0 = enc_col >= ps.x_cols
            m.d.comb += v_rd.addr.eq(Mux(is_h0, ps.h_addr + enc_col - ps.x_cols,
                                         ps.x_addr + enc_col))
            if is_delta and ps.theta is not None:
                m.d.comb += hat_rd.addr.eq(ps.hat_addr + enc_col)
            with m.If((enc_col < ps.cols) & room):
                m.d.sync += [e1.valid.eq(1), e1.col.eq(enc_col), e1.is_h.eq(is_h0),
                             e1.w_addr.eq(enc_w), enc_col.eq(enc_col + 1),
                             enc_w.eq(enc_w + ps.gpc)]
            # encoder stage 1: the change since the column last fired (delta designs)
            value = Mux(e1.is_h & fresh, 0, v_rd.data) if ps.recurrent else v_rd.data
            delta_pass = is_delta and ps.theta is not None
            last = Mux(fresh, 0, hat_rd.data) if delta_pass else 0
            m.d.sync += [e2.valid.eq(e1.valid), e2.col.eq(e1.col), e2.is_h.eq(e1.is_h),
                         e2.w_addr.eq(e1.w_addr), e2.value.eq(value),
                         e2.change.eq(value - last)]
            # encoder stage 2: fire, push, remember what fired
            if delta_pass:
                tx, th = (max(t, 1) for t in ps.theta)
                size = Mux(e2.change < 0, -e2.change, e2.change)
                fire = fresh | (size >= Mux(e2.is_h, th, tx))
                m.d.comb += [hat_wr.addr.eq(ps.hat_addr + e2.col), hat_wr.data.eq(e2.value),
                             hat_wr.en.eq(e2.valid & fire)]
            else:
                fire = 1
            m.d.comb += [pushed.w_addr.eq(e2.w_addr), pushed.col.eq(e2.col),
                         pushed.is_h.eq(e2.is_h), pushed.delta.eq(e2.change),
                         col_fifo.w_en.eq(e2.valid & fire)]
            # issuer: one weight word of the current fired column a cycle
            bias_ok = fresh if is_delta and ps.theta is not None else 1
            with m.If(cur_active):
                q = grp
                acc_off = ps.acc_offset(q, cur.is_h)
                m.d.comb += w_rom.addr.eq(cur.w_addr + q)
                m.d.sync += [s1.valid.eq(1), s1.acc_addr.eq(ps.acc_base + acc_off),
                             s1.b_addr.eq(ps.b_base + acc_off), s1.delta.eq(cur.delta),
                             s1.bias.eq(bias_ok & ps.first_touch(cur.col, q, cur.is_h)),
                             s1.shift.eq(Mux(cur.is_h, shifts.index(ps.shift_h),
                                             shifts.index(ps.shift_x)))]
                with m.If(grp == ps.gpc - 1):
                    m.d.sync += [grp.eq(0), cur_active.eq(col_fifo.r_rdy), cur.eq(popped)]
                    m.d.comb += col_fifo.r_en.eq(1)
                with m.Else():
                    m.d.sync += grp.eq(grp + 1)
            with m.Elif(col_fifo.r_rdy):
                m.d.comb += col_fifo.r_en.eq(1)
                m.d.sync += [cur.eq(popped), cur_active.eq(1), grp.eq(0)]
            with m.If((enc_col == ps.cols) & ~e1.valid & ~e2.valid & ~col_fifo.r_rdy
                      & ~cur_active):
                m.d.sync += enc_col.eq(0)
                m.next = next_state

        # ---- ACTIVATE: gather gate words, one element a cycle into the element-wise unit
        units = []
        for k, ql in enumerate(qm.layers):
            unit = ElementwiseUnit(ql, plan.acc_width, tag_width=ql.hidden_size.bit_length())
            m.submodules[f"elementwise{k}"] = unit
            units.append(unit)
        # two banks of gathered gate words: one is issued while the other is filled
        n_blocks = max(lp.n_blocks for lp in plan.layers)
        gate_regs = [[[Signal(signed(plan.acc_width), name=f"gate{b}_{q}_{k}")
                       for k in range(P)] for q in range(n_blocks)] for b in range(2)]
        full = [Signal(name="bank0_full"), Signal(name="bank1_full")]
        g_bank, i_bank = Signal(), Signal()
        issue_acc = [Signal(signed(plan.acc_width), name=f"issue_acc{q}")
                     for q in range(n_blocks)]
        max_h = max(lp.hidden_size for lp in plan.layers)
        issue_valid = Signal()
        issue_tag = Signal(range(max_h + 1))
        issue_layer = Signal(range(len(units) + 1))
        lane = Signal(range(P + 1))
        elem = Signal(range(max_h + 1))  # grp * P + lane, counted rather than computed
        act_q = Signal(range(max(lp.gather_cycles for lp in plan.layers)))
        early = Signal()  # the next row group's reads began a cycle before this one ended
        g_grp = Signal(range(max(lp.groups_per_gate for lp in plan.layers) + 1))
        wait = Signal(range(max(unit.latency for unit in units) + 4))
        m.d.sync += issue_valid.eq(0)
        for unit in units:
            m.d.comb += [getattr(unit, f"acc{q}").eq(issue_acc[q])
                         for q in range(unit.cell.n_blocks)]
            m.d.comb += unit.tag.eq(issue_tag)

        # ---- output stream registers
        o_valid = Signal()
        o_payload = Signal(output_payload(qm.head.out_fmt.width).layout())
        out_idx = Signal(range(qm.output_size + 1))
        out_word = Signal(signed(plan.acc_width))
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(o_payload)]
        in_idx = Signal(range(qm.input_size + 1))

        def start_pass(ps: _Pass):
            return [enc_col.eq(0), enc_w.eq(ps.w_base), grp.eq(0)]



        # element-wise units' inputs and results, in whatever state the pipeline drains
        for k, (lp, unit) in enumerate(zip(plan.layers, units)):
            m.d.comb += [unit.valid_in.eq(issue_valid & (issue_layer == k)),
                         unit.h_prev.eq(Mux(fresh, 0, v_rd.data))]
            if lp.c_addr is not None:
                m.d.comb += unit.c_prev.eq(Mux(fresh, 0, c_rd.data))
            m.d.comb += [getattr(unit, f"vec_{name}").eq(ew_rd.data[n])
                         for n, name in enumerate(unit.cell.vectors)]
            with m.If(unit.valid_out):
                m.d.comb += [v_wr.addr.eq(lp.h_addr + unit.tag_out),
                             v_wr.data.eq(unit.h_new), v_wr.en.eq(1)]
                if lp.c_addr is not None:
                    m.d.comb += [c_wr.addr.eq(lp.c_addr + unit.tag_out),
                                 c_wr.data.eq(unit.c_new), c_wr.en.eq(1)]

        with m.FSM(name="seq"):
            with m.State("LOAD"):
                m.d.comb += [self.i.ready.eq(1), v_wr.addr.eq(in_idx),
                             v_wr.data.eq(self.i.payload.data), v_wr.en.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += in_idx.eq(in_idx + 1)
                    with m.If(in_idx == qm.input_size - 1):
                        m.d.sync += [in_idx.eq(0), seq_end.eq(self.i.payload.seq_end)]
                        m.d.sync += start_pass(passes[0])
                        m.next = "MAT0"
            for k, (lp, ql) in enumerate(zip(plan.layers, qm.layers)):
                ps, unit = passes[k], units[k]
                gpg, gather_cycles = lp.groups_per_gate, lp.gather_cycles
                with m.State(f"MAT{k}"):
                    matrix(ps, f"DRAIN{k}")
                with m.State(f"DRAIN{k}"):
                    with m.If(mac_idle):
                        m.d.sync += [grp.eq(0), lane.eq(0), elem.eq(0), act_q.eq(0),
                                     early.eq(0), g_grp.eq(0), g_bank.eq(0), i_bank.eq(0),
                                     full[0].eq(0), full[1].eq(0)]
                        m.next = f"ACT{k}"
                with m.State(f"ACT{k}"):
                    # gather engine: the gate-block words of row group g_grp into a free bank.
                    # Gate q is read at act_q == q and captured from acc_q (the registered
                    # read, not the block RAM: Fmax) at act_q == q + 2; the next group's first
                    # reads overlap the last captures when its bank is free.
                    nxt_free = (g_grp + 1 < gpg) & ~Array(full)[~g_bank]
                    with m.If((g_grp < gpg) & ~Array(full)[g_bank]):
                        m.d.comb += act_acc_addr.eq(lp.acc_base + act_q * gpg + g_grp)
                        m.d.sync += act_q.eq(act_q + 1)
                        for b in range(2):
                            with m.If(g_bank == b):
                                with m.Switch(act_q):
                                    for q in range(lp.n_blocks):
                                        with m.Case(q + GATHER_CAPTURE):
                                            m.d.sync += [gate_regs[b][q][n].eq(acc_q[n])
                                                         for n in range(P)]
                        with m.If(act_q == gather_cycles - 2):
                            m.d.sync += early.eq(nxt_free)
                            with m.If(nxt_free):
                                m.d.comb += act_acc_addr.eq(lp.acc_base + g_grp + 1)
                        with m.If(act_q == gather_cycles - 1):
                            m.d.sync += [act_q.eq(0), early.eq(0), Array(full)[g_bank].eq(1),
                                         g_bank.eq(~g_bank), g_grp.eq(g_grp + 1)]
                            with m.If(early):
                                m.d.comb += act_acc_addr.eq(lp.acc_base + gpg + g_grp + 1)
                                m.d.sync += act_q.eq(2)
                            with m.Elif(nxt_free):
                                m.d.comb += act_acc_addr.eq(lp.acc_base + g_grp + 1)
                                m.d.sync += act_q.eq(1)
                    # issue engine: one element a cycle from a full bank; h (and c) are read
                    # now and reach the unit with the gate values next cycle. The addresses
                    # do not wait for the bank flag (a read is harmless; Fmax).
                    m.d.comb += v_rd.addr.eq(lp.h_addr + elem)
                    if lp.c_addr is not None:
                        m.d.comb += c_rd.addr.eq(lp.c_addr + elem)
                    if lp.ew_addr is not None:  # the element's vectors, beside its c
                        m.d.comb += ew_rd.addr.eq(lp.ew_addr + elem)
                    with m.If(Array(full)[i_bank]):
                        m.d.sync += elem.eq(elem + 1)
                        m.d.sync += [issue_acc[q].eq(Array(Array(gate_regs[b][q])
                                                           for b in range(2))[i_bank][lane])
                                     for q in range(lp.n_blocks)]
                        m.d.sync += [issue_valid.eq(1), issue_tag.eq(elem),
                                     issue_layer.eq(k)]
                        with m.If((lane == P - 1) | (elem == lp.hidden_size - 1)):
                            m.d.sync += [lane.eq(0), Array(full)[i_bank].eq(0),
                                         i_bank.eq(~i_bank), grp.eq(grp + 1)]
                            with m.If(grp == gpg - 1):
                                m.d.sync += [grp.eq(0), wait.eq(0)]
                                m.next = f"FLUSH{k}"
                        with m.Else():
                            m.d.sync += lane.eq(lane + 1)
                with m.State(f"FLUSH{k}"):
                    # let the last element leave the element-wise pipeline
                    m.d.sync += wait.eq(wait + 1)
                    with m.If(wait == unit.latency + 1):
                        if k + 1 < len(plan.layers):
                            m.d.sync += start_pass(passes[k + 1])
                            m.next = f"MAT{k + 1}"
                        else:
                            m.d.sync += start_pass(passes[-1])
                            if qm.head_mode == "every":
                                m.next = "HEAD"
                            else:
                                with m.If(seq_end):
                                    m.next = "HEAD"
                                with m.Else():
                                    m.d.sync += fresh.eq(0)
                                    m.next = "LOAD"
            hp = plan.head
            with m.State("HEAD"):
                matrix(passes[-1], "HEAD_DRAIN")
            with m.State("HEAD_DRAIN"):
                with m.If(mac_idle):
                    m.d.sync += [out_idx.eq(0), lane.eq(0), grp.eq(0)]
                    m.next = "OUT_READ"
            # The addressed word stays on the read port (and in acc_q a cycle later) for
            # all outputs of its group: the lane select reads the register, not the block
            # RAM, and rounding waits another cycle (Fmax).
            with m.State("OUT_READ"):
                m.d.comb += act_acc_addr.eq(hp.acc_base + grp)
                m.next = "OUT_WAIT"
            with m.State("OUT_WAIT"):
                m.d.comb += act_acc_addr.eq(hp.acc_base + grp)
                m.next = "OUT_LATCH"
            with m.State("OUT_LATCH"):
                m.d.sync += out_word.eq(Array(acc_q[n] for n in range(P))[lane])
                m.d.comb += act_acc_addr.eq(hp.acc_base + grp)
                m.next = "OUT_SAT"
            with m.State("OUT_SAT"):
                m.d.sync += [o_payload.data.eq(requantize(out_word, qm.head.acc_frac,
                                                          qm.head.out_fmt)),
                             o_payload.last.eq(out_idx == qm.output_size - 1),
                             o_valid.eq(1)]
                m.d.comb += act_acc_addr.eq(hp.acc_base + grp)
                m.next = "OUT_SEND"
            with m.State("OUT_SEND"):
                m.d.comb += act_acc_addr.eq(hp.acc_base + grp)
                with m.If(self.o.ready):
                    m.d.sync += [o_valid.eq(0), out_idx.eq(out_idx + 1)]
                    with m.If(out_idx == qm.output_size - 1):
                        m.d.sync += [fresh.eq(seq_end), grp.eq(0), lane.eq(0)]
                        m.next = "LOAD"
                    with m.Elif(lane == P - 1):
                        m.d.sync += [lane.eq(0), grp.eq(grp + 1)]
                        m.next = "OUT_READ"
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                        m.next = "OUT_LATCH"
        return m

