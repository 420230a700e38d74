"""The accelerator top level: streams in, sequencer, MAC lanes, memories, streams out.

Per time step: LOAD the I input elements; for each layer, MATRIX (every column, every row
group: one weight word a cycle into `lanes` MACs) then ACTIVATE (element-wise unit per
hidden element); then, when the head applies, HEAD (the same MAC lanes over the head's
weights) and OUTPUT (O requantized results on the out stream).

MAC pipeline: stage 0 issues the weight, vector, then stage 1 multiplies the word by the
column value while the bias and accumulator words are read, and stage 2 shifts the
products into accumulator alignment and adds (read-modify-write through a read port that
is transparent for the write port, so consecutive updates of one word are exact).
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..qmodel import QModel
from .arith import requantize
from .elementwise import ElementwiseUnit
from .plan import Plan, make_plan


def input_layout(width: int) -> data.StructLayout:
    """In-stream payload: a signed input element and its step / sequence end markers."""
    return data.StructLayout({"data": signed(width), "step_end": 1, "seq_end": 1})


def output_layout(width: int) -> data.StructLayout:
    """Out-stream payload: a signed head output and the end-of-vector marker."""
    return data.StructLayout({"data": signed(width), "last": 1})


def _bits(n: int) -> int:
    return max(1, (max(n, 1) - 1).bit_length() + 1)


class Accelerator(wiring.Component):
    """Recurrent-network accelerator for a quantized model.

    Parameters
    ----------
    qm : QModel
    lanes : number of MAC lanes P (1..32).

    Members
    -------
    i : In(stream.Signature(input_layout(input width)))
    o : Out(stream.Signature(output_layout(output width)))
    """

    def __init__(self, qm: QModel, lanes: int):
        self.qm = qm
        self.plan: Plan = make_plan(qm, lanes)
        super().__init__({
            "i": In(stream.Signature(input_layout(qm.input_fmt.width))),
            "o": Out(stream.Signature(output_layout(qm.head.out_fmt.width))),
        })

    def elaborate(self, platform):
        qm, plan = self.qm, self.plan
        P = plan.lanes
        m = Module()

        # ---- memories
        w_mem = Memory(shape=data.ArrayLayout(signed(plan.weight_width), P),
                       depth=len(plan.weight_words), init=plan.weight_words.tolist())
        b_mem = Memory(shape=data.ArrayLayout(signed(plan.acc_width), P),
                       depth=len(plan.bias_words), init=plan.bias_words.tolist())
        acc_mem = Memory(shape=data.ArrayLayout(signed(plan.acc_width), P),
                         depth=plan.acc_depth, init=[])
        v_mem = Memory(shape=signed(plan.value_width), depth=plan.vector_depth, init=[])
        self.debug_memories = {"v": v_mem, "acc": acc_mem}
        m.submodules.w_mem, m.submodules.b_mem = w_mem, b_mem
        m.submodules.acc_mem, m.submodules.v_mem = acc_mem, v_mem
        w_rd, b_rd = w_mem.read_port(), b_mem.read_port()
        acc_wr = acc_mem.write_port()
        acc_rd = acc_mem.read_port(transparent_for=(acc_wr,))
        v_wr = v_mem.write_port()
        v_rd = v_mem.read_port()

        # ---- shared counters and flags
        col = Signal(range(max([lp.columns for lp in plan.layers] + [plan.head.in_size]) + 1))
        grp = Signal(range(max([lp.groups_per_col for lp in plan.layers]
                               + [plan.head.groups]) + 1))
        w_addr = Signal(range(len(plan.weight_words) + 1))
        fresh = Signal(init=1)      # first step of a sequence: h and c read as zero
        seq_end = Signal()          # the step being computed ends its sequence

        # ---- MAC pipeline registers (stage 1 and stage 2)
        shifts = sorted({0} | {ql.shift_x for ql in qm.layers} | {ql.shift_h for ql in qm.layers})
        s1 = Signal(data.StructLayout({"valid": 1, "acc_addr": range(plan.acc_depth),
                                       "b_addr": range(len(plan.bias_words)), "bias": 1,
                                       "zero": 1, "shift": range(len(shifts))}))
        s2 = Signal(data.StructLayout({"valid": 1, "acc_addr": range(plan.acc_depth),
                                       "bias": 1, "shift": range(len(shifts))}))
        prod_w = plan.weight_width + plan.value_width
        prods = [Signal(signed(prod_w), name=f"prod{k}") for k in range(P)]
        m.d.sync += s1.valid.eq(0)

        # stage 1: multiply; read bias and accumulator words
        v_val = Mux(s1.zero, 0, v_rd.data)
        m.d.sync += [prods[k].eq(w_rd.data[k] * v_val) for k in range(P)]
        m.d.sync += [s2.valid.eq(s1.valid), s2.acc_addr.eq(s1.acc_addr), s2.bias.eq(s1.bias),
                     s2.shift.eq(s1.shift)]
        m.d.comb += b_rd.addr.eq(s1.b_addr)
        act_acc_addr = Signal.like(acc_rd.addr)
        m.d.comb += acc_rd.addr.eq(Mux(s1.valid, s1.acc_addr, act_acc_addr))

        # stage 2: align and accumulate
        m.d.comb += [acc_wr.addr.eq(s2.acc_addr), acc_wr.en.eq(s2.valid)]
        for k in range(P):
            aligned = Signal(signed(plan.acc_width), name=f"aligned{k}")
            with m.Switch(s2.shift):
                for idx, sh in enumerate(shifts):
                    with m.Case(idx):
                        m.d.comb += aligned.eq(prods[k] << sh)
            base = Mux(s2.bias, b_rd.data[k], acc_rd.data[k])
            m.d.comb += acc_wr.data[k].eq(base + aligned)

        # ---- element-wise units, one per layer
        units = []
        for k, ql in enumerate(qm.layers):
            unit = ElementwiseUnit(ql, plan.acc_width)
            m.submodules[f"elementwise{k}"] = unit
            units.append(unit)
        gate_regs = [[Signal(signed(plan.acc_width), name=f"gate{q}_{k}") for k in range(P)]
                     for q in range(4)]
        lane = Signal(range(P + 1))
        act_q = Signal(range(6))
        h_prev = Signal(signed(plan.value_width))
        c_prev = Signal(signed(plan.value_width))
        for unit in units:
            m.d.comb += [getattr(unit, f"acc{q}").eq(Array(gate_regs[q])[lane])
                         for q in range(4)]
            m.d.comb += [unit.h_prev.eq(h_prev), unit.c_prev.eq(c_prev)]

        # ---- output stream registers
        o_valid = Signal()
        o_payload = Signal(output_layout(qm.head.out_fmt.width))
        out_idx = Signal(range(qm.output_size + 1))
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(o_payload)]
        in_idx = Signal(range(qm.input_size + 1))

        def issue(lp_cols, x_cols, gpc, acc_of, b_base, w_base, x_addr, h_addr, bias_first,
                  shift_x, shift_h, next_state, recurrent=True):
            """One cycle of the MATRIX phase: issue (col, grp) into the pipeline.

            `recurrent`: columns past `x_cols` are the layer's own h, zero on a fresh sequence.
            """
            is_h = col >= x_cols
            acc_addr = acc_of(grp, is_h)
            m.d.comb += [w_rd.addr.eq(w_addr),
                         v_rd.addr.eq(Mux(is_h, h_addr + col - x_cols, x_addr + col))]
            m.d.sync += [s1.valid.eq(1), s1.acc_addr.eq(acc_addr),
                         s1.b_addr.eq(b_base + acc_addr), s1.bias.eq(bias_first(grp, is_h)),
                         s1.zero.eq(is_h & fresh if recurrent else 0),
                         s1.shift.eq(Mux(is_h, shifts.index(shift_h), shifts.index(shift_x))),
                         w_addr.eq(w_addr + 1)]
            with m.If(grp == gpc - 1):
                m.d.sync += [grp.eq(0), col.eq(col + 1)]
                with m.If(col == lp_cols - 1):
                    m.d.sync += col.eq(0)
                    m.next = next_state
            with m.Else():
                m.d.sync += grp.eq(grp + 1)

        with m.FSM(name="seq"):
            with m.State("LOAD"):
                m.d.comb += [self.i.ready.eq(1), v_wr.addr.eq(in_idx),
                             v_wr.data.eq(self.i.payload.data), v_wr.en.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += in_idx.eq(in_idx + 1)
                    with m.If(in_idx == qm.input_size - 1):
                        m.d.sync += [in_idx.eq(0), seq_end.eq(self.i.payload.seq_end),
                                     w_addr.eq(plan.layers[0].w_base)]
                        m.next = "MAT0"
            for k, (lp, ql) in enumerate(zip(plan.layers, qm.layers)):
                gpg = lp.groups_per_gate
                last = k == len(plan.layers) - 1
                if lp.cell == "lstm":
                    def acc_of(g, is_h):
                        return g
                    bias_first = (lambda g, is_h: col == 0)
                else:
                    def acc_of(g, is_h, gpg=gpg):
                        return Mux(is_h & (g >= 2 * gpg), g + gpg, g)
                    bias_first = (lambda g, is_h, lp=lp, gpg=gpg:
                                  (col == 0) | ((col == lp.input_size) & (g >= 2 * gpg)))
                with m.State(f"MAT{k}"):
                    issue(lp.columns, lp.input_size, lp.groups_per_col, acc_of, lp.b_base,
                          lp.w_base, lp.x_addr, lp.h_addr, bias_first, ql.shift_x, ql.shift_h,
                          f"DRAIN{k}")
                with m.State(f"DRAIN{k}"):
                    # wait for the last issue to pass stage 2
                    with m.If(~s1.valid & ~s2.valid):
                        m.d.sync += [grp.eq(0), lane.eq(0), act_q.eq(0)]
                        m.next = f"GATHER{k}"
                with m.State(f"GATHER{k}"):
                    # read the 4 gate-block words of group `grp` into gate_regs
                    m.d.comb += act_acc_addr.eq(act_q * gpg + grp)
                    m.d.sync += act_q.eq(act_q + 1)
                    with m.Switch(act_q):
                        for q in range(4):
                            with m.Case(q + 1):
                                m.d.sync += [gate_regs[q][n].eq(acc_rd.data[n])
                                             for n in range(P)]
                    with m.If(act_q == 4):
                        m.d.sync += act_q.eq(0)
                        m.next = f"READ_H{k}"
                elem = grp * P + lane
                with m.State(f"READ_H{k}"):
                    m.d.comb += v_rd.addr.eq(lp.h_addr + elem)
                    m.next = f"READ_C{k}"
                with m.State(f"READ_C{k}"):
                    m.d.sync += h_prev.eq(Mux(fresh, 0, v_rd.data))
                    if lp.c_addr is not None:
                        m.d.comb += v_rd.addr.eq(lp.c_addr + elem)
                    m.next = f"START{k}"
                with m.State(f"START{k}"):
                    m.d.sync += c_prev.eq(Mux(fresh, 0, v_rd.data))
                    m.d.comb += units[k].start.eq(1)
                    m.next = f"WAIT{k}"
                with m.State(f"WAIT{k}"):
                    with m.If(units[k].done):
                        m.next = f"WRITE_H{k}"
                with m.State(f"WRITE_H{k}"):
                    m.d.comb += [v_wr.addr.eq(lp.h_addr + elem), v_wr.data.eq(units[k].h_new),
                                 v_wr.en.eq(1)]
                    m.next = f"WRITE_C{k}" if lp.c_addr is not None else f"NEXT{k}"
                if lp.c_addr is not None:
                    with m.State(f"WRITE_C{k}"):
                        m.d.comb += [v_wr.addr.eq(lp.c_addr + elem),
                                     v_wr.data.eq(units[k].c_new), v_wr.en.eq(1)]
                        m.next = f"NEXT{k}"
                with m.State(f"NEXT{k}"):
                    # next lane of this group, next group, or the next phase
                    done_group = (lane == P - 1) | (elem == lp.hidden_size - 1)
                    with m.If(~done_group):
                        m.d.sync += lane.eq(lane + 1)
                        m.next = f"READ_H{k}"
                    with m.Elif(grp != gpg - 1):
                        m.d.sync += [lane.eq(0), grp.eq(grp + 1)]
                        m.next = f"GATHER{k}"
                    with m.Else():
                        m.d.sync += [lane.eq(0), grp.eq(0)]
                        if not last:
                            m.d.sync += w_addr.eq(plan.layers[k + 1].w_base)
                            m.next = f"MAT{k + 1}"
                        else:
                            m.d.sync += w_addr.eq(plan.head.w_base)
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
                issue(hp.in_size, 0, hp.groups, lambda g, is_h: g, hp.b_base, hp.w_base,
                      0, hp.h_addr, lambda g, is_h: col == 0, 0, 0, "HEAD_DRAIN",
                      recurrent=False)
            with m.State("HEAD_DRAIN"):
                with m.If(~s1.valid & ~s2.valid):
                    m.d.sync += [out_idx.eq(0), lane.eq(0), grp.eq(0)]
                    m.next = "OUT_READ"
            with m.State("OUT_READ"):
                m.d.comb += act_acc_addr.eq(grp)
                m.next = "OUT_LATCH"
            with m.State("OUT_LATCH"):
                value = Array(acc_rd.data[n] for n in range(P))[lane]
                m.d.sync += [o_payload.data.eq(requantize(value, qm.head.acc_frac,
                                                          qm.head.out_fmt)),
                             o_payload.last.eq(out_idx == qm.output_size - 1),
                             o_valid.eq(1)]
                m.d.comb += act_acc_addr.eq(grp)
                m.next = "OUT_SEND"
            with m.State("OUT_SEND"):
                m.d.comb += act_acc_addr.eq(grp)
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

