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

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..interface import model_input_payload, output_payload
from ..qmodel import QModel
from .activate import ActivateEngine, activate_layers
from .elementwise import ElementwiseUnit
from .head_output import HeadOutput
from .lane_balance import design_model
from .mac_array import MacArray, product_delay
from .matrix import ColumnEncoder, MacIssuer, pass_shifts, passes_of
from .plan import (WEIGHT_BEAT, Plan, PlanError, check_weights, make_plan,
                   weight_image)
from .ternary_array import (LevelSumArray, PointerReader, ScaleCombiner, ScheduleROM,
                            TernaryIssuer)
from .ternary_plan import entry_image, entry_width, make_ternary_plan


class Accelerator(wiring.Component):
    """Recurrent-network accelerator for a quantized model.

    Parameters
    ----------
    qm : QModel
    lanes : number of MAC lanes P (1..`plan.MAX_LANES`).
    delta : None (dense) or [(theta_x, theta_h)] per layer: a delta network.
    units : element-wise units E per layer (a power of two dividing P; default
        `plan.default_units`).
    scale_step : ternary datapath only: scale bits its combiner applies a cycle (default
        `ternary_plan.DEFAULT_SCALE_STEP`).
    early_passes : ternary datapath only: a pass begins under the ACTIVATE before it, each
        column once the h it reads is written (`plan.has_early_passes`; default True: fewer
        cycles for a few dozen logic cells), or after it.
    balance_lanes : ternary datapath only: hidden units reordered so that the lanes share
        the digits evenly (`lane_balance.balance`: fewer stored words, the same outputs);
        None (default): a ternary model's are, False: they keep the model's order.
    weights : "rom" (default: the weight words are the weight memory's contents) or "load"
        (a memory with no contents, written through the `weights` stream before the first
        input is taken: `load_image`; the UP5K's SPRAM). A ternary model's datapath loads
        its entry words so (its pointers, scales and biases stay in ROM).
    product_instances : above 8 lanes, the MAC array's products and the element-wise units'
        PWL products as instances of `hwgen.registered_product.MODULE` (for Verilog; the
        design folder holds the module), not as Amaranth logic (for Amaranth's simulator):
        `mac_array.MacArray`, `pwl_unit.PWLUnit`.

    Members
    -------
    i : In(stream.Signature(model_input_payload(qm).layout()))   (`hwgen.interface`)
    o : Out(stream.Signature(output_payload(output width).layout()))
    weights : In(stream.Signature(unsigned(plan.WEIGHT_BEAT)))   weights="load" only: the
        weight image, a byte a beat; `i` takes nothing until its last byte is in
    """

    def __init__(self, qm: QModel, lanes: int, delta=None, units: int | None = None,
                 scale_step: int | None = None, weights: str = "rom",
                 product_instances: bool = False, balance_lanes: bool | None = None,
                 early_passes: bool = True):
        check_weights(weights)
        qm, self.balanced_lanes = design_model(qm, lanes, balance_lanes)
        self.product_instances = product_instances
        self.qm, self.weights_storage = qm, weights
        self.plan: Plan = make_plan(qm, lanes, delta, units, early_passes)
        # ternary levels: the multiplier-free datapath (`ternary_array`)
        self.ternary_plan = (None if qm.ternary is None
                             else make_ternary_plan(qm, self.plan, scale_step))
        members = {
            "i": In(stream.Signature(model_input_payload(qm).layout())),
            "o": Out(stream.Signature(output_payload(qm.head.out_fmt.width).layout())),
        }
        if weights == "load":
            members["weights"] = In(stream.Signature(unsigned(WEIGHT_BEAT)))
        super().__init__(members)

    def loaded_memory(self) -> tuple[str, int, int]:
        """What the `weights` stream fills (weights="load"): the manifest's name of the
        memory, its depth and its word width: the MAC array's weight words, or a ternary
        model's entry words."""
        if self.ternary_plan is not None:
            return "entries", len(self.ternary_plan.entries), entry_width(self.ternary_plan)
        return "weights", len(self.plan.weight_words), self.plan.weight_width * self.plan.lanes

    def load_image(self) -> bytes:
        """The `weights` stream's bytes (weights="load"), `loaded_memory`'s words: the
        weight words (`plan.weight_image`), or a ternary model's entry words (`entry_image`)."""
        if self.ternary_plan is not None:
            return entry_image(self.ternary_plan)
        return weight_image(self.plan)

    def elaborate(self, platform):
        qm, plan = self.qm, self.plan
        P = plan.lanes
        is_delta = plan.delta is not None
        m = Module()

        # ---- shared memories: E elements a word (E = plan.units), addressed by element
        E = plan.units
        lane_bits = E.bit_length() - 1

        # (with one unit, a word is the element itself: the memories are as they always were)
        def word(addr):
            return addr >> lane_bits if E > 1 else addr

        def lanes_of(width):
            return data.ArrayLayout(signed(width), E) if E > 1 else signed(width)

        def lane(value, j: int):
            return value[j] if E > 1 else value
        m.submodules.v_mem = v_mem = Memory(shape=lanes_of(plan.value_width),
                                            depth=plan.vector_depth // E, init=[])
        v_wr, v_rd = v_mem.write_port(**({"granularity": 1} if E > 1 else {})), v_mem.read_port()
        has_c = any(lp.c_addr is not None for lp in plan.layers)
        if has_c:
            m.submodules.c_mem = c_mem = Memory(shape=lanes_of(plan.cell_width),
                                                depth=plan.cell_depth // E, init=[])
            c_wr, c_rd = c_mem.write_port(), c_mem.read_port()
        if plan.ew_words is not None:  # element-wise vectors, E elements' vectors a word
            n_vectors = plan.ew_words.shape[1]
            vectors = data.ArrayLayout(signed(plan.ew_width), n_vectors)
            m.submodules.ew_rom = ew_rom = Memory(
                shape=data.ArrayLayout(vectors, E) if E > 1 else vectors,
                depth=len(plan.ew_words) // E,
                init=(plan.ew_words.reshape(-1, E, n_vectors) if E > 1
                      else plan.ew_words).tolist())
            ew_rd = ew_rom.read_port()

        fresh = Signal(init=1)      # first step of a sequence: h and c read as zero
        seq_end = Signal()          # the step being computed ends its sequence

        # ---- components
        passes = passes_of(plan, qm)
        head_pass = len(passes) - 1
        tp = self.ternary_plan
        if tp is None:
            m.submodules.encoder = enc = ColumnEncoder(plan, passes)
            m.submodules.mac = mac = MacArray(
                plan.weight_width, plan.acc_width, plan.weight_words, plan.bias_words,
                plan.acc_depth, plan.value_width + 1,
                pass_shifts(passes), weights=self.weights_storage,
                product_instances=self.product_instances)
            m.submodules.issuer = issuer = MacIssuer(plan, passes, mac.layout)
            wiring.connect(m, enc.columns, issuer.columns)
            wiring.connect(m, issuer.issue, mac.issue)
            m.d.comb += [enc.fresh.eq(fresh), issuer.fresh.eq(fresh),
                         issuer.sel.eq(enc.pass_now), issuer.bank.eq(enc.bank_now)]
            matrix_busy, matrix_drained = issuer.busy, mac.idle
            inp = (self._input_after_weights(m, mac.weights, mac.loaded)
                   if mac.loads_weights else self.i)
        else:
            # a column's "first weight word" is its pointer: one per column
            for ps, base in zip(passes, tp.ptr_base):
                ps.w_base, ps.gpc = base, 1
            m.submodules.encoder = enc = ColumnEncoder(plan, passes)
            m.submodules.pointers = ptrs = PointerReader(tp, enc.entry, plan.value_width + 1)
            m.submodules.issuer = issuer = TernaryIssuer(tp, plan.value_width + 1)
            m.submodules.level_sums = sums = LevelSumArray(tp, plan.value_width + 1,
                                                           entries=self.weights_storage)
            m.submodules.schedule = schedule = ScheduleROM(tp)
            m.submodules.combiner = mac = ScaleCombiner(tp, plan.acc_width, plan.bias_words,
                                                        plan.acc_depth, schedule.digit_base)
            m.d.comb += [schedule.ptr_addr.eq(ptrs.rom_addr), schedule.ptr_en.eq(ptrs.rom_en),
                         ptrs.rom_data.eq(schedule.data),
                         schedule.digit_addr.eq(mac.digit_addr),
                         schedule.digit_read.eq(mac.digit_read), mac.digits.eq(schedule.data)]
            wiring.connect(m, enc.columns, ptrs.columns)
            wiring.connect(m, ptrs.spans, issuer.spans)
            wiring.connect(m, issuer.issue, sums.issue)
            # (a design that overlaps steps: see its loader below)
            m.d.comb += [*([] if plan.overlap else [enc.fresh.eq(fresh)]),
                         sums.drain_addr.eq(mac.drain_addr),
                         sums.drain.eq(mac.drain), mac.s_word.eq(sums.s_word),
                         mac.from_bias.eq(fresh if is_delta else 1)]
            # the combine may begin while the last updates write (`DRAIN_WAIT`)
            matrix_busy, matrix_drained = ptrs.full | issuer.busy, sums.drainable
            inp = (self._input_after_weights(m, sums.weights, sums.loaded)
                   if sums.loads_entries else self.i)
        if is_delta:
            m.submodules.hat_mem = hat_mem = Memory(shape=signed(plan.value_width),
                                                    depth=plan.hat_depth, init=[])
            hat_wr, hat_rd = hat_mem.write_port(), hat_mem.read_port()
            m.d.comb += [hat_rd.addr.eq(enc.last_addr), enc.last.eq(hat_rd.data),
                         hat_wr.addr.eq(enc.last_write.addr),
                         hat_wr.data.eq(enc.last_write.data),
                         hat_wr.en.eq(enc.last_write.en)]
        # the encoder reads one element: its lane of the word, picked a cycle after its
        # address; through a read port of its own when its pass may run during ACTIVATE
        own_read_port = plan.overlap or plan.early_passes
        enc_rd = v_mem.read_port() if own_read_port else v_rd
        if own_read_port:
            m.d.comb += enc_rd.addr.eq(word(enc.value_addr))
        if E > 1:
            value_lane = Signal(range(E))
            m.d.sync += value_lane.eq(enc.value_addr)
            m.d.comb += enc.value.eq(enc_rd.data[value_lane])
        else:
            m.d.comb += enc.value.eq(enc_rd.data)

        act = ActivateEngine(activate_layers(plan), P, plan.acc_width,
                             plan.acc_depth, plan.vector_depth, plan.cell_depth,
                             0 if plan.ew_words is None else len(plan.ew_words), units=E,
                             filled=tp is not None)
        m.submodules.activate = act
        if own_read_port:   # the shared port is ACTIVATE's alone: no state decode on its address
            m.d.comb += v_rd.addr.eq(word(act.h_addr))
        m.d.comb += act.bank.eq(enc.bank_now)   # the bank of the pass just run
        out = HeadOutput(qm.head, P, plan.head.acc_base, plan.acc_width, plan.acc_depth)
        m.submodules.head_output = out
        wiring.connect(m, wiring.flipped(self.o), out.o)
        # the accumulator read port: the MAC array's own updates first, then whichever of
        # these reads (each drives 0 while idle)
        m.d.comb += [mac.read_addr.eq(Value.cast(act.acc_addr) | Value.cast(out.acc_addr)),
                     out.acc_word.eq(mac.acc_word)]
        if tp is None:
            m.d.comb += act.acc_word.eq(mac.acc_word)
        else:   # the combiner's words go straight into ACTIVATE's banks as they are made
            m.d.comb += [act.acc_word.eq(mac.word), act.fill.eq(mac.fill),
                         act.fill_gate.eq(mac.fill_gate), act.fill_last.eq(mac.fill_last),
                         mac.groups_issued.eq(act.groups_issued)]
        if has_c:
            m.d.comb += c_rd.addr.eq(word(act.c_addr))
        if plan.ew_words is not None:
            m.d.comb += ew_rd.addr.eq(word(act.ew_addr))

        # element-wise units, E per layer: E elements in, their new state written back as
        # one word as they leave; their products registered as the MAC array's are
        registered_products = product_delay(P) > 0
        units = []
        for k, (lp, ql) in enumerate(zip(plan.layers, qm.layers)):
            row = []
            for j in range(E):
                unit = ElementwiseUnit(ql, plan.acc_width,
                                       tag_width=(ql.hidden_size + E - 1).bit_length(),
                                       registered_products=registered_products,
                                       product_instances=self.product_instances)
                m.submodules[f"elementwise{k}" + (f"_{j}" if E > 1 else "")] = unit
                row.append(unit)
                m.d.comb += [
                    unit.valid_in.eq(act.element.valid & (act.element.payload.layer == k)),
                    unit.tag.eq(act.element.payload.tag),
                    unit.h_prev.eq(Mux(fresh, 0, lane(v_rd.data, j)))]
                m.d.comb += [getattr(unit, f"acc{q}").eq(act.element_gates(j)[q])
                             for q in range(unit.cell.n_blocks)]
                if lp.c_addr is not None:
                    m.d.comb += unit.c_prev.eq(Mux(fresh, 0, lane(c_rd.data, j)))
                m.d.comb += [getattr(unit, f"vec_{name}").eq(lane(ew_rd.data, j)[n])
                             for n, name in enumerate(unit.cell.vectors)]
            units.append(row[0])
            first = row[0]  # the units run in step: the first one's tag and valid speak for all
            with m.If(first.valid_out):
                m.d.comb += [v_wr.addr.eq(word(lp.h_addr + first.tag_out)), v_wr.en.eq(-1)]
                m.d.comb += [lane(v_wr.data, j).eq(unit.h_new) for j, unit in enumerate(row)]
                if lp.c_addr is not None:
                    m.d.comb += [c_wr.addr.eq(word(lp.c_addr + first.tag_out)),
                                 c_wr.en.eq(1)]
                    m.d.comb += [lane(c_wr.data, j).eq(unit.c_new)
                                 for j, unit in enumerate(row)]
        wait = Signal(range(max(unit.latency for unit in units) + 4))
        # in FLUSH (entered a cycle after the last element's issue: `act.finished`), equals
        # wait == latency (a register: the transition waits on no compare)
        flushed = Signal()
        assert min(unit.latency for unit in units) >= 1
        in_idx = Signal(range(qm.input_size + 1))

        def run_pass(next_state: str):
            """A MATRIX pass (the one begun last): read columns, issue words; done when both
            are."""
            if not own_read_port:
                m.d.comb += v_rd.addr.eq(word(enc.value_addr))
            with m.If(enc.done & ~matrix_busy):
                m.next = next_state

        def write_element(addr, value, en):
            """Write one element of the vector memory (its lane of the word)."""
            if E == 1:
                return [v_wr.addr.eq(addr), v_wr.data.eq(value), v_wr.en.eq(en)]
            return [v_wr.addr.eq(word(addr)), v_wr.en.eq(en << addr[:lane_bits]),
                    *[v_wr.data[j].eq(value) for j in range(E)]]

        def start_pass(k: int):
            """Begin pass k next cycle (the state that calls this names k once, for any cycle:
            the selection does not wait for the transition's condition)."""
            m.d.comb += enc.sel.eq(k)
            return enc.start.eq(1)

        if plan.overlap:
            ahead = self._load_ahead(m, inp, write_element, seq_end)
            m.d.comb += enc.bank.eq(ahead.bank)
            if tp is None:
                m.d.comb += enc.hold_h.eq(ahead.early)
        units_write = Cat(*(u.valid_out for u in units)).any()   # E new h written now
        # the next step's pass begins under the last ACTIVATE (a head once a sequence) or
        # as the head's combine ends (a head on every step: ternary levels)
        next_step_under_activate = plan.overlap and qm.head_mode == "last"
        if plan.early_passes:
            # a pass begun under an ACTIVATE (`early`) reads each column below `h_ready`:
            # ACTIVATE writes its h in order, E elements each time its units' outputs are
            # valid (counted past the input columns when the pass is the next step's layer
            # 0, of a one-layer design: they are in the other input bank)
            early = Signal(name="early_pass")
            h_ready = Signal.like(enc.h_ready)
            m.d.comb += [enc.hold_h.eq(early), enc.h_ready.eq(h_ready)]
            with m.If(act.start):
                m.d.sync += h_ready.eq(plan.layers[0].input_size if next_step_under_activate
                                       else 0)
            with m.Elif(units_write):
                m.d.sync += h_ready.eq(h_ready + E)
        if plan.overlap and tp is not None:
            # the loader takes any cycle the units leave the write port free
            m.d.comb += ahead.units_busy.eq(units_write)
            # begun under ACTIVATE, the next step is never a sequence's first, whatever
            # `fresh` says of this one (begun as the head's combine ends, `fresh` is set)
            m.d.comb += enc.fresh.eq(fresh & ~ahead.early if next_step_under_activate
                                     else fresh)

        def begin_unless_begun(begin):
            """Begin the pass after an ACTIVATE unless it began under it (`early`)."""
            if plan.early_passes:
                with m.If(~early):
                    m.d.comb += begin
            else:
                m.d.comb += begin

        def next_pass(k: int):
            """The pass that follows layer k's ACTIVATE, and whether it is the next step's."""
            if k + 1 < len(units):
                return k + 1, False
            if qm.head_mode == "every":
                return head_pass, False
            return (0, True) if next_step_under_activate else (None, False)

        def head_or_load(begin_head):
            """After a sequence's last step the head, else the next step's LOAD."""
            with m.If(seq_end):
                m.d.comb += begin_head
                m.next = "HEAD"
            with m.Else():
                m.d.sync += fresh.eq(0)
                m.next = "LOAD"

        # ---- the sequencer
        with m.FSM(name="seq"):
            if plan.overlap:
                with m.State("LOAD"):
                    begin = start_pass(0)
                    with m.If(ahead.loaded):
                        m.d.comb += [begin, ahead.take.eq(1)]
                        m.next = "MAT0"
            elif qm.embedding_design == "folded":
                self._load_token(m, inp, enc, seq_end, lambda: start_pass(0))
            elif qm.embedding_design == "token_rom":
                self._load_and_embed_token(m, inp, write_element, seq_end,
                                           lambda: start_pass(0))
            else:
                with m.State("LOAD"):
                    begin = start_pass(0)
                    m.d.comb += inp.ready.eq(1)
                    m.d.comb += write_element(in_idx, inp.payload.data, inp.valid)
                    with m.If(inp.valid):
                        m.d.sync += in_idx.eq(in_idx + 1)
                        with m.If(in_idx == qm.input_size - 1):
                            m.d.sync += [in_idx.eq(0), seq_end.eq(inp.payload.seq_end)]
                            m.d.comb += begin
                            m.next = "MAT0"
            for k, unit in enumerate(units):
                with m.State(f"MAT{k}"):
                    run_pass(f"DRAIN{k}")
                if tp is None:
                    with m.State(f"DRAIN{k}"):
                        m.d.comb += act.sel.eq(k)
                        # the next step's pass begins with the last ACTIVATE: its input
                        # columns now, its recurrent ones when this step's h is made
                        next_step_early = plan.overlap and k == len(units) - 1
                        if next_step_early:
                            begin = start_pass(0)
                        with m.If(mac.idle):
                            m.d.comb += act.start.eq(1)
                            if plan.overlap:
                                m.d.sync += ahead.units_busy.eq(1)
                            if next_step_early:
                                with m.If(ahead.loaded & ~seq_end):
                                    m.d.comb += [begin, ahead.take.eq(1)]
                                    m.d.sync += ahead.early.eq(1)
                            m.next = f"ACT{k}"
                else:
                    with m.State(f"DRAIN{k}"):
                        # the combine and ACTIVATE begin together: ACTIVATE takes each row
                        # group as the combiner makes its words
                        m.d.comb += [mac.sel.eq(k), act.sel.eq(k)]
                        with m.If(matrix_drained):
                            m.d.comb += [mac.start.eq(1), act.start.eq(1)]
                            m.next = f"ACT{k}"
                with m.State(f"ACT{k}"):
                    if not own_read_port:
                        m.d.comb += v_rd.addr.eq(word(act.h_addr))
                    nxt, next_step = next_pass(k)
                    if tp is not None and plan.early_passes and nxt is not None:
                        # the next pass begins once the combine has read (and cleared)
                        # every level sum, each column as ACTIVATE writes the h it reads
                        begin = start_pass(nxt)
                        may = mac.done & ~early
                        if next_step:
                            may &= ahead.loaded & ~seq_end
                        with m.If(may):
                            m.d.comb += begin
                            m.d.sync += early.eq(1)
                            if next_step:
                                m.d.comb += ahead.take.eq(1)
                                m.d.sync += ahead.early.eq(1)
                    with m.If(act.finished):  # a cycle after the last element's issue
                        m.d.sync += wait.eq(0)
                        m.next = f"FLUSH{k}"
                with m.State(f"FLUSH{k}"):
                    # let the last element leave the element-wise pipeline
                    begin = start_pass(k + 1 if k + 1 < len(units) else head_pass)
                    m.d.sync += [wait.eq(wait + 1), flushed.eq(wait == unit.latency - 1)]
                    with m.If(flushed):
                        if plan.overlap and tp is None:
                            m.d.sync += ahead.units_busy.eq(0)
                        # (a started pass runs until done: the head's only if it follows;
                        # one begun early is running)
                        if plan.early_passes:
                            m.d.sync += early.eq(0)
                        if k + 1 < len(units):
                            begin_unless_begun(begin)
                            m.next = f"MAT{k + 1}"
                        elif qm.head_mode == "every":
                            begin_unless_begun(begin)
                            m.next = "HEAD"
                        elif plan.overlap:
                            with m.If(ahead.early):   # the next step's pass is running
                                m.d.sync += [ahead.early.eq(0), fresh.eq(0)]
                                m.next = "MAT0"
                            with m.Else():
                                head_or_load(begin)
                        else:
                            head_or_load(begin)
            with m.State("HEAD"):
                run_pass("HEAD_DRAIN")
            if tp is None:
                with m.State("HEAD_DRAIN"):
                    with m.If(mac.idle):
                        m.d.comb += out.start.eq(1)
                        m.next = "OUTPUT"
            else:
                with m.State("HEAD_DRAIN"):
                    with m.If(matrix_drained):
                        m.d.comb += [mac.start.eq(1), mac.sel.eq(head_pass)]
                        m.next = "HEAD_COMBINE"
                with m.State("HEAD_COMBINE"):
                    m.d.comb += [mac.sel.eq(head_pass), mac.from_bias.eq(1)]  # head: dense
                    if plan.overlap and not next_step_under_activate:
                        begin = start_pass(0)
                    with m.If(mac.done):
                        m.d.comb += out.start.eq(1)
                        m.next = "OUTPUT"
                        if plan.overlap and not next_step_under_activate:
                            # the next step's pass begins while the outputs leave: the
                            # level sums are read, its input loaded, the h it reads made
                            with m.If(ahead.loaded):
                                m.d.comb += [begin, ahead.take.eq(1)]
                                m.d.sync += [ahead.early.eq(1), fresh.eq(seq_end)]
            with m.State("OUTPUT"):
                with m.If(out.done):
                    if plan.overlap and not next_step_under_activate:
                        with m.If(ahead.early):
                            m.d.sync += ahead.early.eq(0)
                            m.next = "MAT0"
                        with m.Else():
                            m.d.sync += fresh.eq(seq_end)
                            m.next = "LOAD"
                    else:
                        m.d.sync += fresh.eq(seq_end)
                        m.next = "LOAD"
        return m

    def _input_after_weights(self, m, load, loaded):
        """The input stream as the sequencer sees it when the weights load (into the MAC
        array's weight memory, or the ternary datapath's entry memory: `load`): nothing is
        valid, and nothing is taken, until `loaded`."""
        wiring.connect(m, wiring.flipped(self.weights), load)
        inp = self.i.signature.flip().create(path=("inp",))
        m.d.comb += [inp.valid.eq(self.i.valid & loaded), inp.payload.eq(self.i.payload),
                     self.i.ready.eq(inp.ready & loaded)]
        return inp

    def _load_ahead(self, m, inp, write_element, seq_end):
        """The input loader of a design that overlaps steps: it fills the input bank the
        next step reads while this step runs, whenever the vector memory's write port is
        free (not while ACTIVATE's units write: `units_busy`, set by the sequencer). The
        sequencer `take`s a loaded bank when it begins the step's first pass: that step's
        bank, and its end of sequence, are then the loaded ones.

        Returns the loader's signals: bank (the one being filled), loaded, take (In),
        units_busy (the units own the write port: a register the sequencer sets over
        ACTIVATE, or, in the ternary datapath, their output's valid) and early (a register
        the sequencer sets: the next step's pass has begun and holds its recurrent
        columns)."""
        from types import SimpleNamespace
        plan, size = self.plan, self.qm.input_size
        ahead = SimpleNamespace(bank=Signal(name="load_bank"), loaded=Signal(name="loaded"),
                                take=Signal(name="take"), units_busy=Signal(name="units_busy"),
                                early=Signal(name="early"))
        idx = Signal(range(size), name="load_idx")
        next_seq_end = Signal()
        accept = ~ahead.loaded & ~ahead.units_busy
        m.d.comb += inp.ready.eq(accept)
        addr = Mux(ahead.bank, plan.x_bank_stride, 0) + idx
        with m.If(inp.valid & accept):   # (never as the units write: `units_busy`)
            m.d.comb += write_element(addr, inp.payload.data, 1)
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx == size - 1):
                m.d.sync += [idx.eq(0), ahead.loaded.eq(1),
                             next_seq_end.eq(inp.payload.seq_end)]
        with m.If(ahead.take):
            m.d.sync += [ahead.loaded.eq(0), ahead.bank.eq(~ahead.bank),
                         seq_end.eq(next_seq_end)]
        return ahead

    def _load_token(self, m, inp, enc, seq_end, start_first_pass):
        """A folded embedding: LOAD takes one token id and layer 0's pass starts on it (the
        column encoder fires its column, and the previous token's in a delta pass).
        `start_first_pass()`, called in the state, selects the pass and returns the
        statement that starts it."""
        vocab = self.qm.vocab_size
        token = Signal(range(vocab), name="token")
        last_token = Signal(range(vocab), name="last_token")
        m.d.comb += [enc.token.eq(token), enc.last_token.eq(last_token)]
        with m.State("LOAD"):
            begin = start_first_pass()
            m.d.comb += inp.ready.eq(1)
            with m.If(inp.valid):
                m.d.sync += [token.eq(inp.payload.token), last_token.eq(token),
                             seq_end.eq(inp.payload.seq_end)]
                m.d.comb += begin
                m.next = "MAT0"

    def _load_and_embed_token(self, m, inp, write_element, seq_end, start_first_pass):
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
            m.d.comb += inp.ready.eq(1)
            with m.If(inp.valid):
                m.d.sync += [row.eq(inp.payload.token * size), idx.eq(0),
                             seq_end.eq(inp.payload.seq_end)]
                m.next = "EMBED"
        with m.State("EMBED"):
            begin = start_first_pass()
            m.d.comb += rom_rd.addr.eq(row + idx)
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx > 0):  # the value read a cycle ago
                m.d.comb += write_element((idx - 1)[:len(idx)], rom_rd.data, 1)
            with m.If(idx == size):
                m.d.comb += begin
                m.next = "MAT0"
