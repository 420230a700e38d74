"""The cycle model: cycles of each phase of a step, composed from the components' own.

A MATRIX pass of N weight-word issues takes N cycles plus the column encoder's and MAC
issuer's latencies before the first issue, the MAC array's pipeline after the last, and one
cycle in which the sequencer sees the array idle. ACTIVATE is the activate engine's own
model, then the last element's register, the element-wise unit and the write of its new
state. Tests check this model against cycles measured in simulation.

A design that overlaps steps (`Plan.overlap`) loads the next step's input while this step
runs, and begins the next step's layer-0 pass with the last layer's ACTIVATE: its input
columns issue while ACTIVATE runs, its recurrent columns wait for the new h. That hides
ACTIVATE up to the input columns' issue cycles, and the load. A sequence's first step
follows the head: its pass runs alone, so a sequence costs that hidden part once more,
and the one cycle of LOAD that takes the loaded input.

A model with an embedding loads one token a step, then EMBED copies the token's E ROM values
into the layer-0 input: E + 1 cycles (the ROM's read, then a write a cycle). Folded into
layer 0 instead, its pass visits one input column, the token's.
"""
from __future__ import annotations

from ..cells import get_cell
from .activate import issue_cycles, start_delay
from .elementwise import latency as elementwise_latency
from .head_output import output_cycles
from .mac_array import pipeline_depth, product_delay
from .matrix import ENCODER_LATENCY, ISSUER_LATENCY, QUEUE_DEPTH
from .plan import LayerPlan, Plan, token_columns

ELEMENT_REGISTER, STATE_WRITE = 1, 1
ROM_READ = 1  # the token ROM's synchronous read before EMBED's first write
LOAD_TAKE = 1  # overlapping steps: LOAD's cycle that takes an input already loaded
NEXT_PASS_AFTER_OUTPUT = 2  # MAT0 and DRAIN0 after OUTPUT, the next step's pass done


def matrix_overhead(lanes: int) -> int:
    """A dense MATRIX pass's cycles beyond its issues at `lanes` lanes."""
    return ENCODER_LATENCY + ISSUER_LATENCY + pipeline_depth(lanes) + 1


def embed_cycles(plan: Plan) -> int:
    """Cycles of EMBED: 0 without an embedding."""
    return plan.embedding_size + ROM_READ if plan.token_rom is not None else 0


def activate_cycles(lp: LayerPlan, lanes: int, units: int = 1) -> int:
    """Cycles of one layer's ACTIVATE, until its last new state is written."""
    return activate_cycles_of(lp.cell, lp.hidden_size, lanes, units)


def activate_cycles_of(cell: str, hidden: int, lanes: int, units: int) -> int:
    """`activate_cycles` of a layer of `cell` with `hidden` elements (gathered, not filled)."""
    return (start_delay(lanes) + issue_cycles(hidden, lanes, get_cell(cell).n_blocks, units)
            + ELEMENT_REGISTER
            + elementwise_latency(cell, product_delay(lanes) > 0) + STATE_WRITE)


def layer_cycles(lp: LayerPlan, lanes: int, fired_columns: float | None = None,
                 units: int = 1) -> dict:
    """Cycles of one layer's step; `fired_columns` (delta) defaults to all columns."""
    cols = lp.visited_columns if fired_columns is None else fired_columns
    matrix = max(cols * lp.groups_per_col, lp.visited_columns)  # each visited column: a cycle
    return {"matrix": matrix + matrix_overhead(lanes),
            "activate": activate_cycles(lp, lanes, units)}


def cycle_model(plan: Plan, input_size: int, head_mode: str = "last") -> dict:
    """Cycles of one dense time step with an always-valid input and an always-ready output."""
    layers = [layer_cycles(lp, plan.lanes, units=plan.units) for lp in plan.layers]
    hp = plan.head
    head = (hp.matrix_cycles + matrix_overhead(plan.lanes)
            + output_cycles(hp.groups, hp.out_size, plan.lanes))
    matrix = sum(lp.matrix_cycles for lp in plan.layers)
    macs = sum(lp.macs for lp in plan.layers)
    load = input_size + embed_cycles(plan)
    per_step = load + sum(c["matrix"] + c["activate"] for c in layers)
    hidden = 0
    if plan.overlap:
        first = plan.layers[0]
        hidden = min(layers[-1]["activate"], first.input_size * first.groups_per_col)
        load, per_step = 0, per_step - input_size - hidden
    return {
        "load": load,
        "layers": layers,
        "hidden_activate": hidden,
        "per_step": per_step,
        "head": head,
        "macs_per_step": macs,
        "ideal_per_step": macs / plan.lanes,
        "matrix_per_step": matrix,
        "matrix_utilization": macs / plan.lanes / matrix,
        "step_utilization": macs / plan.lanes / per_step,
        "head_macs": hp.macs,
        # what a testbench measures between steps: the head runs on every step, or once
        # per sequence after the last one
        "model_per_step": per_step + (head if head_mode == "every" else 0),
        "per_sequence_overhead": (head + (LOAD_TAKE + hidden if plan.overlap else 0)
                                  if head_mode == "last" else 0),
    }


def ternary_pass_cycles(counts, digits: int) -> dict:
    """Cycles of one ternary MATRIX pass and of its combine alone (the head's), from the
    stored words of each column (`TernaryPlan.column_counts`) and the combine's scale
    digits (`TernaryPlan.pass_digits`), one a cycle.

    The issuer spends max(1, words) cycles on a column, and the combine begins once the
    last issue has left the level-sum stages it waits out (`DRAIN_WAIT`). Columns with no
    words after the last stored one end the pass while those stages empty, and so are
    hidden in them (up to their number, less the cycle that sees them empty).
    """
    from .ternary_array import (COMBINE_DEPTH, COMBINE_START, DRAIN_WAIT,
                                ISSUER_LATENCY as T_ISSUER, POINTER_LATENCY)
    trailing = 0
    for c in reversed(counts):
        if c:
            break
        trailing += 1
    issue = sum(max(1, c) for c in counts) - min(trailing, DRAIN_WAIT - 1)
    return {"matrix": ENCODER_LATENCY + POINTER_LATENCY + T_ISSUER + issue
            + DRAIN_WAIT + 1,
            "combine": COMBINE_START + digits + COMBINE_DEPTH,
            "stored_words": int(sum(counts))}


def combine_activate_cycles(tp, p: int, lp: LayerPlan, lanes: int, units: int = 1) -> int:
    """Cycles of a ternary layer's combine and ACTIVATE, which begin together, until its last
    new state is written: the combiner walks the terms row group by row group, and each
    word it ends goes into ACTIVATE's banks (`ScaleCombiner`'s fills); a group's walk waits
    while both banks hold groups not yet issued (`combine_activate_walk`)."""
    return combine_activate_walk(tp, p, lp, lanes, units)[0]


def combine_activate_walk(tp, p: int, lp: LayerPlan, lanes: int, units: int = 1) -> tuple:
    """(`combine_activate_cycles`, cycles the combiner's walk waited for a bank)."""
    t = combine_activate_timeline(tp, p, lp, lanes, units)
    return t["cycles"], t["waits"]


def combine_activate_timeline(tp, p: int, lp: LayerPlan, lanes: int, units: int = 1) -> dict:
    """Walks the combiner's and ACTIVATE's issue engine's registers cycle by cycle (cycle 1:
    the first after their start), as `activate.issue_cycles` does for the gather engine.

    cycles: until the last new state is written (`combine_activate_cycles`); waits: cycles
    the combiner's walk waited for a bank; combine_done: the first cycle the combiner reads
    done (every level sum read and cleared); h_ready: per element, the first cycle its new
    state may be read (written, and counted in the sequencer's `h_ready`)."""
    from .activate import GATHER_CAPTURE
    from .ternary_array import COMBINE_DEPTH
    waits = 0
    terms = tp.terms[tp.term_base[p]:tp.term_base[p + 1]]
    walk = [(t, d) for t in terms for d in range(tp.term_digits(t))]
    groups, hidden = lp.groups_per_gate, lp.hidden_size
    element_out = ELEMENT_REGISTER + elementwise_latency(lp.cell, product_delay(lanes) > 0)
    item = begun = issued = filled = 0
    full_at = {}                 # cycle from which a filled group's bank reads full
    i_bank_group, lane = 0, 0    # the issue engine: its group and lane
    h_ready = [None] * hidden
    combine_done = None
    cycle = 0
    while True:
        cycle += 1
        # the issue engine, on the flags as they read this cycle
        ends = None
        if i_bank_group in full_at and full_at[i_bank_group] <= cycle:
            elem = i_bank_group * lanes + lane
            for e in range(elem, min(elem + units, hidden)):
                h_ready[e] = cycle + element_out + STATE_WRITE
            if lane == lanes - units or elem + units >= hidden:
                if i_bank_group == groups - 1:
                    return {"cycles": cycle + element_out + STATE_WRITE, "waits": waits,
                            "combine_done": combine_done, "h_ready": h_ready}
                ends = True
            else:
                lane += units
        # the combiner's walk, on `issued` as it reads this cycle
        if item < len(walk):
            term, digit = walk[item]
            group_start = term[7] and digit == 0
            if group_start and begun == issued + 2:
                waits += 1
            else:
                begun += group_start
                item += 1
                if term[4] and digit == tp.term_digits(term) - 1 and term[8]:
                    # read by c0 next cycle; captured, and its bank full, edges later
                    full_at[filled] = cycle + 1 + GATHER_CAPTURE + 1
                    filled += 1
                if item == len(walk):   # its last digit through c0, c1 and c2
                    combine_done = cycle + COMBINE_DEPTH + 1
        if ends:
            lane, issued = 0, issued + 1
            i_bank_group += 1


def held_columns(timeline: dict, ready: int = 0, released: int = 0) -> list:
    """`ternary_matrix_cycles`' launch_from for a pass begun the cycle the combine of
    `timeline` (`combine_activate_timeline`) reads done: `ready` columns at once, then one
    per element of that ACTIVATE from the cycle its h is written, then `released` columns
    from ACTIVATE's end (the hold's release)."""
    done = timeline["combine_done"]
    return ([0] * ready + [c - done for c in timeline["h_ready"]]
            + [timeline["cycles"] + 1 - done] * released)


def ternary_cycle_model(plan: Plan, tp, input_size: int, head_mode: str = "last") -> dict:
    """`cycle_model` of the ternary datapath: cycles per dense step as a function of the
    stored (nonzero) words of each column; keys as `cycle_model`'s, plus the stored words;
    a layer's cycles are its MATRIX pass and its combine with ACTIVATE beside it
    (`ternary_step_cycles`); the head's combine runs alone."""
    step = ternary_step_cycles(plan, tp, input_size)
    layers, per_step, last = step["layers"], step["per_step"], step["last"]
    hp, k = plan.head, len(plan.layers)
    hc = ternary_pass_cycles(tp.column_counts(k), tp.pass_digits(k))
    out = output_cycles(hp.groups, hp.out_size, plan.lanes)
    head = hc["matrix"] + hc["combine"] + out
    if head_mode == "every" and plan.early_passes:
        # its pass begins under the last ACTIVATE (before its end: a lead < 0), each column
        # once its h is written
        lead = last["combine_done"] - last["cycles"]
        head = (lead + ternary_matrix_cycles(tp, k, [True] * hp.in_size, held_columns(last))
                + hc["combine"] + out)
    overhead = head if head_mode == "last" else 0
    if plan.overlap and head_mode == "every":
        # the next step's pass begins as the head's combine ends, its input loaded: it runs
        # while the outputs leave, and its combine begins once both are done (and the
        # sequencer has passed MAT0 and DRAIN0)
        m0 = layers[0]["matrix"]
        per_step += max(m0, out + NEXT_PASS_AFTER_OUTPUT) - out - input_size - m0
    elif plan.overlap:
        # the next step's pass begins as the combine is done, under ACTIVATE (one layer)
        lp = plan.layers[0]
        early = last["combine_done"] + ternary_matrix_cycles(
            tp, 0, [True] * lp.columns, held_columns(last, ready=lp.input_size))
        overhead += LOAD_TAKE + per_step - input_size - early
        per_step = early
    macs = sum(lp.macs for lp in plan.layers)
    words = sum(c["stored_words"] for c in layers)
    return {
        "load": input_size,
        "layers": layers,
        "per_step": per_step,
        "head": head,
        "macs_per_step": macs,
        "stored_words_per_step": words,
        "dense_words_per_step": sum(lp.matrix_cycles for lp in plan.layers) * tp.levels,
        "head_stored_words": hc["stored_words"],
        # the words a step of the model visits: with the head's where it runs every step
        "model_stored_words_per_step": words + (hc["stored_words"] if head_mode == "every"
                                                else 0),
        "step_utilization": macs / plan.lanes / per_step,
        "head_macs": hp.macs,
        "model_per_step": per_step + (head if head_mode == "every" else 0),
        "per_sequence_overhead": overhead,
    }


def ternary_step_cycles(plan: Plan, tp, input_size: int, fired=None) -> dict:
    """Cycles of one step of the ternary datapath, LOAD to the last layer's last new state:
    per layer its MATRIX pass (`ternary_matrix_cycles`; in a delta step `fired` holds, per
    layer, the booleans of its pass's columns that fire: `delta_fired_columns`) and its
    combine with ACTIVATE beside it (`combine_activate_timeline`). Where a pass begins
    early (`Plan.early_passes`) it begins the cycle the combine before it reads done,
    each input column (the h being made) from the cycle it is written, its recurrent
    columns from ACTIVATE's end (the hold's release); otherwise after ACTIVATE.

    per_step; layers: per layer matrix, combine_activate, stored_words (fired: columns
    fired); last: the last layer's timeline."""
    layers, prev, per_step = [], None, input_size
    for k, lp in enumerate(plan.layers):
        mask = [True] * lp.columns if fired is None else fired[k]
        early = plan.early_passes and prev is not None
        launch = held_columns(prev, released=lp.columns - lp.input_size) if early else None
        matrix = ternary_matrix_cycles(tp, k, mask, launch)
        per_step += (prev["combine_done"] if early else prev["cycles"] if prev else 0) + matrix
        prev = combine_activate_timeline(tp, k, lp, plan.lanes, plan.units)
        layers.append({"matrix": matrix, "combine_activate": prev["cycles"],
                       "stored_words": int(sum(c for c, f in zip(tp.column_counts(k), mask)
                                               if f))})
        if fired is not None:
            layers[-1]["fired"] = int(sum(mask))
    return {"per_step": per_step + prev["cycles"], "layers": layers, "last": prev}


def embedding_per_step(plan: Plan) -> dict:
    """Cycles of one dense step of an embedding model, both designs: the built one's model,
    and the other's (the token ROM's EMBED and E input columns against the folded design's
    one token column)."""
    built = cycle_model(plan, 1)["per_step"]
    first, size = plan.layers[0], plan.embedding_size
    rom_extra = size + ROM_READ + (size - token_columns(plan.delta)) * first.groups_per_col
    if plan.token_rom is not None:
        return {"token_rom": built, "folded": built - rom_extra}
    return {"token_rom": built + rom_extra, "folded": built}


def ternary_matrix_cycles(tp, p: int, fired, launch_from=None) -> int:
    """Cycles of ternary MATRIX pass p (its MAT and DRAIN states) when the columns `fired`
    (booleans, in pass order) fire: a delta pass. The encoder reads a column a cycle into
    its queue while the queue has room, and queues those that fire; the pointer reader and
    the issuer spend max(1, stored words) cycles on each, and the level sums drain. The
    busiest lane of a fired column sets its cost, so the cycles depend on which columns
    fire, not only on how many: this walks the components' handshakes cycle by cycle (as
    `ternary_array` and `matrix.ColumnEncoder` do) rather than summing a closed form.
    `launch_from`: per column, the first cycle the encoder may read it (a pass begun early,
    its columns waiting for the h they read: `Plan.early_passes`)."""
    from .matrix import QUEUE_DEPTH
    from .ternary_array import DRAIN_WAIT
    counts = tp.column_counts(p)
    cols = len(counts)
    col, e1, e2 = 0, None, None         # the encoder's next column and its two stages
    queue = []
    held = None                         # the pointer reader's column
    active, left = False, 0             # the issuer: its column's words still to issue
    in_flight = [False] * DRAIN_WAIT
    draining = False
    cycles = 0
    while True:
        cycles += 1
        issuing = active and counts[active - 1] != 0
        last = left <= 1
        spans_ready = not active or last
        take = held is None or spans_ready
        done = col == cols and e1 is None and e2 is None and not queue
        if draining and not any(in_flight):
            return cycles
        if not draining and done and held is None and not active:
            draining = True
        # the edge
        room = len(queue) + (e1 is not None) + (e2 is not None) < QUEUE_DEPTH - 1
        popped = queue.pop(0) if queue and take else None
        if e2 is not None and fired[e2]:
            queue.append(e2)
        may = col < cols and (launch_from is None or launch_from[col] <= cycles)
        e2, e1 = e1, (col if may and room and not draining else None)
        col += e1 is not None
        if active and not last:
            left -= 1
        elif spans_ready:
            active = 0 if held is None else held + 1
            left = counts[held] if held is not None else 0
        if take:
            held = popped
        in_flight = [issuing] + in_flight[:-1]


def ternary_delta_step_cycles(plan: Plan, tp, input_size: int, fired) -> dict:
    """Cycles of one delta step of the ternary datapath (`ternary_step_cycles` with the
    columns `fired`); as `ternary_cycle_model`'s the step where every column fires."""
    step = ternary_step_cycles(plan, tp, input_size, fired)
    return {"load": input_size, "layers": step["layers"], "per_step": step["per_step"]}


def delta_matrix_cycles(fired, gpc: int, lanes: int) -> int:
    """Cycles of one delta MATRIX pass of the MAC array of `lanes` lanes when the columns
    `fired` (booleans, in pass order) fire, each issuing `gpc` weight words
    (`LayerPlan.groups_per_col`).

    Walks the components' handshakes cycle by cycle (`matrix.ColumnEncoder`: a column read a
    cycle while the queue has room, `ENCODER_LATENCY` edges to the queue; `MacIssuer`: a queued
    column's words one a cycle, the next column without a gap), then the MAC pipeline drains.
    Counted as `layer_cycles`' "matrix" is: with every column firing this is
    ``columns * gpc + matrix_overhead(lanes)``. Unlike ``max(fired * gpc, columns) + overhead``
    (`layer_cycles` with a fired count) it sees where the fired columns lie: the issuer waits
    for a fired column the encoder has not yet read, and a pass where nothing fires ends
    without the MAC pipeline's drain.
    """
    cols = len(fired)
    col, reading = 0, cols > 0
    e1 = e2 = None                  # the encoder's columns in flight (read, change)
    queue: list = []
    held = 0                        # queued + in flight (the encoder's `held`)
    active, grp, last_word = False, 0, False
    last_issue = None
    c = 0
    while True:
        if active:
            last_issue = c
        if not reading and held == 0 and not active:   # enc.done & ~issuer.busy
            drain_from = c + 1                         # DRAIN: waits for the array idle
            break
        launch = reading and held < QUEUE_DEPTH - 1
        ready = not active or last_word
        pop = ready and bool(queue)
        push = e2 is not None and bool(fired[e2])
        # the edge
        if active and not last_word:
            grp += 1
            last_word = grp == gpc - 1
        else:
            active = pop
            grp, last_word = 0, gpc == 1
            if pop:
                queue.pop(0)
        if push:
            queue.append(e2)
        held += int(launch) - int(pop) - int(e2 is not None and not push)
        e2, e1 = e1, (col if launch else None)
        if launch:
            reading = col != cols - 1
            col += 1
        c += 1
    # the array is idle its pipeline's depth + 1 cycles after the last issue
    start_act = drain_from if last_issue is None else max(
        drain_from, last_issue + pipeline_depth(lanes) + 1)
    return start_act + 1


def delta_step_cycles(plan, input_size: int, fired) -> dict:
    """Cycles of one step of a delta design (no overlapped steps: `plan.overlap` is False for
    delta), `fired` holding per layer the booleans of its pass's columns that fire this step
    (`delta_fired_columns`): LOAD, then per layer its MATRIX pass (`delta_matrix_cycles`) and
    ACTIVATE."""
    assert plan.delta is not None and not plan.overlap
    matrix = [delta_matrix_cycles(mask, lp.groups_per_col, plan.lanes)
              for lp, mask in zip(plan.layers, fired)]
    act = [activate_cycles(lp, plan.lanes, plan.units) for lp in plan.layers]
    return {"per_step": input_size + sum(matrix) + sum(act), "matrix": matrix,
            "activate": act, "fired": [int(sum(mask)) for mask in fired]}


def delta_fired_columns(qm, xq, delta) -> list:
    """Which columns of each layer's pass fire, per sequence and step of a delta run of the
    reference (`hwgen.ref`): [n][t][layer] booleans, input columns then hidden ones (a
    model without an embedding: a folded one's token columns fire by other rules)."""
    import numpy as np
    from ..ref import run_int
    trace = []
    run_int(qm, xq, trace=trace, delta=delta)
    n, t_len = len(xq), len(trace[0])
    return [[[np.concatenate([steps[t]["fired_x"][i], steps[t]["fired_h"][i]])
              for steps in trace] for t in range(t_len)] for i in range(n)]
