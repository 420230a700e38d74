"""The accelerator: memories, and a sequencer over connected datapath components.

Per time step: LOAD the I input elements (with an embedding, one token id: a token ROM's
EMBED then copies the token's row into the layer-0 input, or a folded embedding's layer-0
pass fires the token's column); for each layer, MATRIX then ACTIVATE; then, when the head
applies, HEAD (a MATRIX pass over the head's weights) and OUTPUT::

    input stream -> vector memory -> ColumnEncoder -> MacIssuer -> MacArray
                                                                      | accumulators
          vector/cell memories <- ElementwiseUnit <- ActivateEngine <-+
                                                     HeadOutput <-----+ -> output stream

* `matrix.ColumnEncoder` reads each column (and, for delta networks, its last-fired
  value) and queues the columns that fire; `matrix.MacIssuer` issues their weight words,
  one a cycle, into `mac_array.MacArray` (weight ROM, biases, accumulators, P lanes).
* `activate.ActivateEngine` gathers a row group's gate words from the accumulators and
  issues one element a cycle into the layer's `elementwise.ElementwiseUnit`, whose
  results are written back to h (and c).
* `head_output.HeadOutput` requantizes the head's accumulators onto the output stream.

The sequencer owns the memories the components share (the vector memory: input, then
each layer's h; the cell memory; the last-fired values of delta networks; the element-wise
vectors), routes their ports by phase, and starts and waits for each component. What
differs between cells comes from the cell's description (`hwgen.cells`) through the plan;
the cycles of each phase are the components' own (`hwgen.rtl.cycles`).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..interface import model_input_payload, output_payload
from ..qmodel import QModel
from .activate import ActivateEngine, ActivateLayer
from .elementwise import ElementwiseUnit
from .head_output import HeadOutput
from .mac_array import MacArray
from .matrix import ColumnEncoder, MacIssuer, passes_of
from .plan import Plan, make_plan


class Accelerator(wiring.Component):
    """Recurrent-network accelerator for a quantized model.

    Parameters
    ----------
    qm : QModel
    lanes : number of MAC lanes P (1..32).
    delta : None (dense) or [(theta_x, theta_h)] per layer: a delta network.

    Members
    -------
    i : In(stream.Signature(model_input_payload(qm).layout()))   (`hwgen.interface`)
    o : Out(stream.Signature(output_payload(output width).layout()))
    """

    def __init__(self, qm: QModel, lanes: int, delta=None):
        self.qm = qm
        self.plan: Plan = make_plan(qm, lanes, delta)
        super().__init__({
            "i": In(stream.Signature(model_input_payload(qm).layout())),
            "o": Out(stream.Signature(output_payload(qm.head.out_fmt.width).layout())),
        })

    def elaborate(self, platform):
        qm, plan = self.qm, self.plan
        P = plan.lanes
        is_delta = plan.delta is not None
        m = Module()

        # ---- shared memories
        m.submodules.v_mem = v_mem = Memory(shape=signed(plan.value_width),
                                            depth=plan.vector_depth, init=[])
        v_wr, v_rd = v_mem.write_port(), v_mem.read_port()
        has_c = any(lp.c_addr is not None for lp in plan.layers)
        if has_c:
            m.submodules.c_mem = c_mem = Memory(shape=signed(plan.cell_width),
                                                depth=plan.cell_depth, init=[])
            c_wr, c_rd = c_mem.write_port(), c_mem.read_port()
        if plan.ew_words is not None:  # element-wise vectors, one word per element
            m.submodules.ew_rom = ew_rom = Memory(
                shape=data.ArrayLayout(signed(plan.ew_width), plan.ew_words.shape[1]),
                depth=len(plan.ew_words), init=plan.ew_words.tolist())
            ew_rd = ew_rom.read_port()

        fresh = Signal(init=1)      # first step of a sequence: h and c read as zero
        seq_end = Signal()          # the step being computed ends its sequence

        # ---- components
        passes = passes_of(plan, qm)
        head_pass = len(passes) - 1
        m.submodules.encoder = enc = ColumnEncoder(plan, passes)
        m.submodules.mac = mac = MacArray(
            plan.weight_width, plan.acc_width, plan.weight_words, plan.bias_words,
            plan.acc_depth, plan.value_width + 1,
            sorted({0} | {p.shift_x for p in passes} | {p.shift_h for p in passes}))
        m.submodules.issuer = issuer = MacIssuer(plan, passes, mac.layout)
        wiring.connect(m, enc.columns, issuer.columns)
        wiring.connect(m, issuer.issue, mac.issue)
        m.d.comb += [enc.fresh.eq(fresh), issuer.fresh.eq(fresh)]
        if is_delta:
            m.submodules.hat_mem = hat_mem = Memory(shape=signed(plan.value_width),
                                                    depth=plan.hat_depth, init=[])
            hat_wr, hat_rd = hat_mem.write_port(), hat_mem.read_port()
            m.d.comb += [hat_rd.addr.eq(enc.last_addr), enc.last.eq(hat_rd.data),
                         hat_wr.addr.eq(enc.last_write.addr),
                         hat_wr.data.eq(enc.last_write.data),
                         hat_wr.en.eq(enc.last_write.en)]
        m.d.comb += enc.value.eq(v_rd.data)

        act = ActivateEngine([ActivateLayer(lp) for lp in plan.layers], P, plan.acc_width,
                             plan.acc_depth, plan.vector_depth, plan.cell_depth,
                             0 if plan.ew_words is None else len(plan.ew_words))
        m.submodules.activate = act
        out = HeadOutput(qm.head, P, plan.head.acc_base, plan.acc_width, plan.acc_depth)
        m.submodules.head_output = out
        wiring.connect(m, wiring.flipped(self.o), out.o)
        # the accumulator read port: the MAC array's own updates first, then whichever of
        # these reads (each drives 0 while idle)
        m.d.comb += [mac.read_addr.eq(act.acc_addr | out.acc_addr),
                     act.acc_word.eq(mac.acc_word), out.acc_word.eq(mac.acc_word)]
        if has_c:
            m.d.comb += c_rd.addr.eq(act.c_addr)
        if plan.ew_words is not None:
            m.d.comb += ew_rd.addr.eq(act.ew_addr)

        # element-wise units: elements in, new state written back as it leaves
        units = []
        for k, (lp, ql) in enumerate(zip(plan.layers, qm.layers)):
            unit = ElementwiseUnit(ql, plan.acc_width, tag_width=ql.hidden_size.bit_length())
            m.submodules[f"elementwise{k}"] = unit
            units.append(unit)
            m.d.comb += [unit.valid_in.eq(act.element.valid & (act.element.payload.layer == k)),
                         unit.tag.eq(act.element.payload.tag),
                         unit.h_prev.eq(Mux(fresh, 0, v_rd.data))]
            m.d.comb += [getattr(unit, f"acc{q}").eq(act.element.payload.gates[q])
                         for q in range(unit.cell.n_blocks)]
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
        wait = Signal(range(max(unit.latency for unit in units) + 4))
        in_idx = Signal(range(qm.input_size + 1))

        def run_pass(k: int, next_state: str):
            """A MATRIX pass: read columns, issue words; done when both are."""
            m.d.comb += [enc.sel.eq(k), issuer.sel.eq(k), enc.run.eq(1),
                         v_rd.addr.eq(enc.value_addr)]
            with m.If(enc.done & ~issuer.busy):
                m.next = next_state

        def start_pass(k: int):
            m.d.comb += [enc.sel.eq(k), enc.start.eq(1)]

        # ---- the sequencer
        with m.FSM(name="seq"):
            if qm.embedding_design == "folded":
                self._load_token(m, enc, seq_end, lambda: start_pass(0))
            elif qm.embedding_design == "token_rom":
                self._load_and_embed_token(m, v_wr, seq_end, lambda: start_pass(0))
            else:
                with m.State("LOAD"):
                    m.d.comb += [self.i.ready.eq(1), v_wr.addr.eq(in_idx),
                                 v_wr.data.eq(self.i.payload.data), v_wr.en.eq(self.i.valid)]
                    with m.If(self.i.valid):
                        m.d.sync += in_idx.eq(in_idx + 1)
                        with m.If(in_idx == qm.input_size - 1):
                            m.d.sync += [in_idx.eq(0), seq_end.eq(self.i.payload.seq_end)]
                            start_pass(0)
                            m.next = "MAT0"
            for k, unit in enumerate(units):
                with m.State(f"MAT{k}"):
                    run_pass(k, f"DRAIN{k}")
                with m.State(f"DRAIN{k}"):
                    with m.If(mac.idle):
                        m.d.comb += [act.start.eq(1), act.sel.eq(k)]
                        m.next = f"ACT{k}"
                with m.State(f"ACT{k}"):
                    m.d.comb += [act.sel.eq(k), act.run.eq(1), v_rd.addr.eq(act.h_addr)]
                    with m.If(act.done):
                        m.d.sync += wait.eq(0)
                        m.next = f"FLUSH{k}"
                with m.State(f"FLUSH{k}"):
                    # let the last element leave the element-wise pipeline
                    m.d.sync += wait.eq(wait + 1)
                    with m.If(wait == unit.latency + 1):
                        if k + 1 < len(units):
                            start_pass(k + 1)
                            m.next = f"MAT{k + 1}"
                        else:
                            start_pass(head_pass)
                            if qm.head_mode == "every":
                                m.next = "HEAD"
                            else:
                                with m.If(seq_end):
                                    m.next = "HEAD"
                                with m.Else():
                                    m.d.sync += fresh.eq(0)
                                    m.next = "LOAD"
            with m.State("HEAD"):
                run_pass(head_pass, "HEAD_DRAIN")
            with m.State("HEAD_DRAIN"):
                with m.If(mac.idle):
                    m.d.comb += out.start.eq(1)
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                with m.If(out.done):
                    m.d.sync += fresh.eq(seq_end)
                    m.next = "LOAD"
        return m

    def _load_token(self, m, enc, seq_end, start_first_pass):
        """A folded embedding: LOAD takes one token id and layer 0's pass starts on it (the
        column encoder fires its column, and the previous token's in a delta pass)."""
        vocab = self.qm.vocab_size
        token = Signal(range(vocab), name="token")
        last_token = Signal(range(vocab), name="last_token")
        m.d.comb += [enc.token.eq(token), enc.last_token.eq(last_token)]
        with m.State("LOAD"):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [token.eq(self.i.payload.token), last_token.eq(token),
                             seq_end.eq(self.i.payload.seq_end)]
                start_first_pass()
                m.next = "MAT0"

    def _load_and_embed_token(self, m, v_wr, seq_end, start_first_pass):
        """A token ROM: LOAD takes one token id, EMBED writes its E values to the layer-0
        input, one a cycle, each a cycle after its read (`hwgen.rtl.cycles.embed_cycles`)."""
        plan = self.plan
        size = plan.embedding_size
        m.submodules.token_rom = rom = Memory(shape=signed(self.qm.input_fmt.width),
                                              depth=len(plan.token_rom),
                                              init=plan.token_rom.tolist())
        rom_rd = rom.read_port()
        row = Signal(range(len(plan.token_rom)), name="embed_row")  # the token's first value
        idx = Signal(range(size + 1), name="embed_idx")             # the next value to read
        with m.State("LOAD"):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [row.eq(self.i.payload.token * size), idx.eq(0),
                             seq_end.eq(self.i.payload.seq_end)]
                m.next = "EMBED"
        with m.State("EMBED"):
            m.d.comb += rom_rd.addr.eq(row + idx)
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx > 0):  # the value read a cycle ago
                m.d.comb += [v_wr.addr.eq(idx - 1), v_wr.data.eq(rom_rd.data), v_wr.en.eq(1)]
            with m.If(idx == size):
                start_first_pass()
                m.next = "MAT0"
