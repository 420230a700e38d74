"""The hardware plan of a quantized model: memory layouts, word contents, cycle model.

One definition of the layouts, used by the generator, the manifest and the tests.

Weights are stored column-major, one word per (column, row group): a word holds `lanes`
weights, lane k of group g of a gate block feeding row ``g * lanes + k`` of that gate.
Every gate block starts on a group boundary (rows past H are zero padding), so all lanes
of a word write the same accumulator word. A column visits the gate blocks its side feeds
(`hwgen.cells.Cell.blocks_x` / `blocks_h`): GRU input columns visit (r, z, n_x) and
recurrent columns (r, z, n_h); LSTM columns visit (i, f, g, o). A design whose weights load
(`WEIGHT_STORAGE`) gets the same words through a stream, a byte a beat: `weight_image`.

A cell with no recurrent matrix (SRU: `blocks_h` empty) has no recurrent columns at all:
its columns are its inputs only.

A model with an embedding has a token ROM: row t (E values of layer 0's x_fmt, one per word,
at t * E) is what token t writes into the vector memory's layer-0 input. Or its embedding is
folded into layer 0 (`QModel.embedding_design`): layer 0's V input columns are W_x E, laid
out as any, but its pass visits only the token's column (`LayerPlan.token_columns`; a delta
pass the previous token's too). See docs/embeddings.md for the choice.

The vector memory holds the layer-0 input, then each layer's h; the cell memory the c of
each layer whose cell has a cell state; the element-wise ROM (cells with `Cell.vectors`,
SRU's v_f and v_r) one word per hidden element of such a layer, the vectors side by side.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ..cells import get_cell
from ..qmodel import QModel
from .fanout import copy_groups

MAX_LANES = 128  # MAC lanes a design may have


@dataclass
class LayerPlan:
    index: int
    cell: str
    input_size: int
    hidden_size: int
    groups_per_gate: int
    blocks_x: tuple          # gate blocks visited by input columns
    blocks_h: tuple          # gate blocks visited by recurrent columns
    w_base: int              # weight-memory address of column 0
    b_base: int              # bias-memory address of block 0, group 0
    acc_base: int            # accumulator-memory address of block 0, group 0
    x_addr: int              # vector-memory address of this layer's input element 0
    h_addr: int              # vector-memory address of h element 0
    c_addr: int | None       # cell-memory address of c element 0 (a cell with c)
    hat_addr: int            # delta: last-fired values, inputs then hidden elements
    ew_addr: int | None = None  # element-wise ROM address of element 0 (`Cell.vectors`)
    token_columns: int = 0   # folded embedding: input columns visited (1, delta 2), else 0

    @property
    def n_blocks(self) -> int:
        """Gate blocks of the cell: accumulator words per row group."""
        return get_cell(self.cell).n_blocks

    @property
    def groups_per_col(self) -> int:
        """Weight words of one input column (a recurrent column has as many, or there
        are no recurrent columns: `make_plan`)."""
        return len(self.blocks_x) * self.groups_per_gate

    @property
    def recurrent_columns(self) -> int:
        """Columns of h: H, or none for a cell without a recurrent matrix (SRU)."""
        return self.hidden_size if self.blocks_h else 0

    @property
    def columns(self) -> int:
        return self.input_size + self.recurrent_columns

    @property
    def visited_columns(self) -> int:
        """Columns a pass visits: all, or the token's (and the previous token's) and h."""
        if self.token_columns:
            return self.token_columns + self.recurrent_columns
        return self.columns

    @property
    def matrix_cycles(self) -> int:
        return self.visited_columns * self.groups_per_col

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one dense step (real rows only, no padding); a folded
        embedding's one-hot input costs its token's column only."""
        inputs = 1 if self.token_columns else self.input_size
        return self.hidden_size * (len(self.blocks_x) * inputs
                                   + len(self.blocks_h) * self.hidden_size)


@dataclass
class HeadPlan:
    in_size: int
    out_size: int
    groups: int
    w_base: int
    b_base: int
    acc_base: int
    h_addr: int

    @property
    def matrix_cycles(self) -> int:
        return self.in_size * self.groups

    @property
    def macs(self) -> int:
        return self.in_size * self.out_size


@dataclass
class Plan:
    lanes: int
    weight_width: int        # lane width of a weight word (max over all weight formats)
    value_width: int         # width of the vector memory (max over x and h formats)
    cell_width: int          # width of the cell-state memory (c; 1 when no cell has c)
    acc_width: int           # accumulator width (max over layers and head)
    layers: list[LayerPlan]
    head: HeadPlan
    weight_words: np.ndarray  # (depth, lanes) int64
    bias_words: np.ndarray    # (depth, lanes) int64, already shifted to accumulator frac
    vector_depth: int
    cell_depth: int
    hat_depth: int
    acc_depth: int
    delta: list | None = None  # [(theta_x, theta_h)] per layer, or None for dense
    ew_words: np.ndarray | None = None  # (depth, vectors) int64: element-wise ROM, or None
    ew_width: int = 1        # width of an element-wise ROM value (max v_fmt width)
    units: int = 1           # element-wise units E: elements per word of the state memories
    token_rom: np.ndarray | None = None  # (V * E,) int64: the embedding, row-major, or None
    embedding_size: int = 0  # E of a model's embedding (ROM or folded), else 0
    overlap: bool = False    # the next step's pass begins before the step ends (`overlaps_steps`)
    x_bank_stride: int = 0   # overlap: vector-memory distance of the second input bank
    acc_bank_stride: int = 0  # overlap: accumulator distance of layer 0's second bank
    early_passes: bool = False  # a pass begins under ACTIVATE, reading h as written


class PlanError(ValueError):
    """The hardware options do not fit the model (lanes, thresholds)."""


def token_columns(delta) -> int:
    """Input columns a folded embedding's layer-0 pass visits: the token's; in a delta
    network also the previous token's (its column leaves as the new one's enters)."""
    return 1 if delta is None else 2


def _check_cell(cell) -> None:
    """Refuse, by name, a cell the datapath cannot run yet."""
    if not cell.has_rtl:
        raise PlanError(f"Cell {cell.name!r} has no element-wise RTL program yet")
    if cell.blocks_h and len(cell.blocks_x) != len(cell.blocks_h):
        raise PlanError(f"Cell {cell.name!r}: its input and recurrent columns visit "
                        f"{len(cell.blocks_x)} and {len(cell.blocks_h)} gate blocks; the "
                        f"column encoder steps one weight-word count for both")


def default_units(lanes: int) -> int:
    """Element-wise units for `lanes` MAC lanes: a row group's P elements leave ACTIVATE in
    P / E cycles, about the 4 to 6 cycles its gate words take to gather (E = P / 8, a power
    of two dividing P; 1 below 16 lanes)."""
    units = 1
    while lanes % (2 * units) == 0 and 2 * units <= lanes // 8:
        units *= 2
    return units


def hidden_activate_units(qm: QModel, lanes: int, input_issue: int) -> int:
    """Element-wise units of a design that overlaps steps: the fewest (a power of two, up to
    `default_units`) whose last ACTIVATE hides under the next step's `input_issue` cycles of
    layer-0 input columns. More units would not shorten the step, only cost logic and
    multipliers (a GRU unit takes five)."""
    from .cycles import activate_cycles_of   # (the cycle model reads plans)
    last, units = qm.layers[-1], 1
    while (units < default_units(lanes) and activate_cycles_of(
            last.cell, last.hidden_size, lanes, units) > input_issue):
        units *= 2
    return units


def check_units(units, lanes: int) -> None:
    if not isinstance(units, int) or units < 1 or units & (units - 1) or lanes % units:
        raise PlanError(f"element-wise units must be a power of two dividing the {lanes} "
                        f"lanes, not {units!r}")


def overlaps_steps(qm: QModel, delta) -> bool:
    """Whether a design begins the next step's layer-0 pass before the step ends, its input
    loaded ahead into a second bank: a dense pass (a delta pass adds into words the
    ACTIVATE still reads) and a vector input (no token). With a head once per sequence
    the pass begins during the last ACTIVATE: weights that multiply run its input columns
    there, ternary levels also each recurrent column whose new h is written
    (`has_early_passes`). A head on every step runs its own pass there: ternary levels
    begin the next step's pass as the head's combine ends, while its outputs leave."""
    return (delta is None and qm.embedding_design is None
            and (qm.head_mode == "last" or qm.ternary is not None))


def has_early_passes(qm: QModel, overlap: bool) -> bool:
    """Whether a design begins a pass under the ACTIVATE before it, each column that reads
    the h being made once it is written: the ternary datapath (its pass adds into level
    sums that the combine has read and cleared, not into the words ACTIVATE takes), where a
    pass follows an ACTIVATE in a step (a second layer's, the head on every step) or the
    design overlaps steps. Weights that multiply hold every recurrent column of the next
    step's pass until ACTIVATE is done: it would add into the words ACTIVATE reads."""
    return qm.ternary is not None and (overlap or len(qm.layers) > 1
                                       or qm.head_mode == "every")


def _early_pass_loads_in_time(qm: QModel, lanes: int) -> bool:
    """Whether a design that `overlaps_steps` is built so: the next step's input loads
    before it is wanted, with an always-valid input. Weights that multiply: the loader
    writes outside ACTIVATE (`units_busy`), during layer 0's recurrent issues (a weight word
    a cycle each of its row groups). Ternary levels: the loader writes in any cycle no
    element-wise unit does (fewer than a step's column issues, a cycle each at least).
    With a head once a sequence the ternary datapath begins the next step's pass under the
    last ACTIVATE only in a one-layer design with recurrent columns (the columns it holds
    back are the h that ACTIVATE writes)."""
    first = qm.layers[0]
    if qm.ternary is not None and qm.head_mode == "every":
        return True
    if not first.spec.blocks_h:
        return False
    if qm.ternary is None:
        gpc = len(first.spec.blocks_x) * math.ceil(first.hidden_size / lanes)
        return first.input_size <= first.hidden_size * gpc
    return len(qm.layers) == 1


def head_shares_layer_words(overlap: bool, lanes: int) -> bool:
    """Whether the head accumulates into layer 0's first words instead of words of its own.

    In a design that overlaps steps the head runs alone (after a sequence's last step, no
    pass of the next step begun, every ACTIVATE done) and no accumulator word carries a value
    from one pass to another (dense passes start from the bias). Above `LANES_PER_COPY`
    lanes the accumulators are LUT RAM in 2-lane slices, 16 words a row: a head word past
    the layers' 2 x 16 (64 lanes) or 2 x 8 (128 lanes) cost every slice a row more (the
    64-lane speech design's 1928 DPR16X4; at 128 lanes 98 % of the ECP5-85F's LUT RAM, which
    nextpnr could not place)."""
    return overlap and copy_groups(lanes) > 1


def make_plan(qm: QModel, lanes: int, delta=None, units: int | None = None,
              early_passes: bool = True) -> Plan:
    """Lay out a quantized model for a `lanes`-wide MAC array (and delta thresholds) with
    `units` element-wise units (default `hidden_activate_units` where the design overlaps
    steps, else `default_units`); `early_passes` False: the ternary datapath's passes each
    begin after the ACTIVATE before them (`has_early_passes`).

    With E units, the vector, cell and element-wise memories hold E elements a word and
    every region (the input, each layer's h and c) starts on a word: the E elements a
    cycle that ACTIVATE issues are one word, read and written together.

    A design that overlaps steps (`overlaps_steps`) holds two input banks (the next step's
    input is loaded while this one's is read) and two banks of layer 0's accumulators (the
    next step's input columns add into one while ACTIVATE reads the other): the second
    bank of each follows the first.
    """
    if not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise PlanError(f"lanes must be an integer in 1..{MAX_LANES}, not {lanes!r}")

    def align(n: int) -> int:
        return -(-n // units) * units
    if delta is not None:
        if len(delta) != len(qm.layers):
            raise PlanError(f"delta needs one (theta_x, theta_h) per layer: "
                             f"{len(qm.layers)}, not {len(delta)}")
        delta = [(int(tx), int(th)) for tx, th in delta]
        if min(min(t) for t in delta) < 0:
            raise PlanError(f"delta thresholds must be >= 0, not {delta}")
    P = lanes
    w_words, b_words, layers = [], [], []
    folded = qm.embedding_design == "folded"
    first = qm.layers[0]
    first_gpc = len(first.spec.blocks_x) * math.ceil(first.hidden_size / lanes)
    # the next step's input loads during this step (`_load_ahead` in `hwgen.rtl.top`)
    overlap = (overlaps_steps(qm, delta) and _early_pass_loads_in_time(qm, lanes)
               and (early_passes or qm.ternary is None))
    # ternary levels: the combiner's level sums hold a pass's sums, not the accumulators
    acc_banks = overlap and qm.ternary is None
    if units is None:
        units = (hidden_activate_units(qm, lanes, first.input_size * first_gpc) if acc_banks
                 else default_units(lanes))
    check_units(units, lanes)
    # the layer-0 input sits at 0..I-1 (a folded embedding's token is no vector: none)
    x_bank = 0 if folded else align(qm.layers[0].input_size)
    v_addr = 2 * x_bank if overlap else x_bank
    x_addr = c_addr = hat_addr = acc_addr = 0
    ew_words = []
    for k, ql in enumerate(qm.layers):
        cell = ql.spec
        _check_cell(cell)
        hsz, isz = ql.hidden_size, ql.input_size
        gpg = math.ceil(hsz / P)
        bx, bh = cell.blocks_x, cell.blocks_h
        lp = LayerPlan(k, ql.cell, isz, hsz, gpg, bx, bh, len(w_words), len(b_words),
                       acc_addr, x_addr, v_addr, c_addr if cell.has_cell_state else None,
                       hat_addr, len(ew_words) if cell.vectors else None,
                       token_columns(delta) if folded and k == 0 else 0)
        ew_words += list(zip(*(ql.vectors[name].tolist() for name in cell.vectors)))
        ew_words += [()] * (align(len(ew_words)) - len(ew_words))
        v_addr += align(hsz)
        c_addr += align(hsz) if cell.has_cell_state else 0
        hat_addr += (lp.token_columns if lp.token_columns else isz) + hsz
        acc_addr += cell.n_blocks * gpg * (2 if acc_banks and k == 0 else 1)
        for j in range(lp.columns):
            w, col, blocks = (ql.w_x, j, bx) if j < isz else (ql.w_h, j - isz, bh)
            for blk in blocks:
                for g in range(gpg):
                    w_words.append(_lane_slice(w[:, col], blk * hsz, g * P, hsz, P))
        shifted = ql.bias << ql.bias_shift
        for blk in range(cell.n_blocks):
            for g in range(gpg):
                b_words.append(_lane_slice(shifted, blk * hsz, g * P, hsz, P))
        layers.append(lp)
        x_addr = lp.h_addr
    out, hin = qm.head.weight.shape
    groups = math.ceil(out / P)
    head_base = 0 if head_shares_layer_words(acc_banks, P) else acc_addr
    head = HeadPlan(hin, out, groups, len(w_words), len(b_words), head_base, layers[-1].h_addr)
    for j in range(hin):
        for g in range(groups):
            w_words.append(_lane_slice(qm.head.weight[:, j], 0, g * P, out, P))
    shifted = qm.head.bias << qm.head.bias_shift
    for g in range(groups):
        b_words.append(_lane_slice(shifted, 0, g * P, out, P))
    weight_width = max([max(ql.wx_fmt.width, ql.wh_fmt.width) for ql in qm.layers]
                       + [qm.head.w_fmt.width])
    value_width = max(max(ql.x_fmt.width, ql.h_fmt.width) for ql in qm.layers)
    cell_width = max([ql.c_fmt.width for ql in qm.layers if ql.c_fmt] + [1])
    acc_width = max([ql.acc_width for ql in qm.layers] + [qm.head.acc_width])
    plan = Plan(P, weight_width, value_width, cell_width, acc_width, layers, head,
                np.array(w_words, dtype=np.int64).reshape(-1, P),
                np.array(b_words, dtype=np.int64).reshape(-1, P), v_addr, align(max(c_addr, 1)),
                max(hat_addr, 1), max(acc_addr, head_base + groups), delta, units=units)
    if overlap:
        plan.overlap, plan.x_bank_stride = True, x_bank
    plan.early_passes = early_passes and has_early_passes(qm, overlap)
    if acc_banks:
        plan.acc_bank_stride = layers[0].n_blocks * layers[0].groups_per_gate
    if any(ew_words):
        n_vectors = max(len(word) for word in ew_words)
        plan.ew_words = np.array([list(w) + [0] * (n_vectors - len(w)) for w in ew_words],
                                 dtype=np.int64)
        plan.ew_width = max(ql.v_fmt.width for ql in qm.layers if ql.vectors)
    if qm.embedding_design == "token_rom":
        plan.token_rom = qm.embedding.reshape(-1).astype(np.int64)
        plan.embedding_size = qm.embedding.shape[1]
    elif folded:
        plan.embedding_size = qm.folded_dim
    return plan


#: Where the MAC array's weight words live: "rom", a block RAM with the words as its initial
#: contents; "load", a writable memory with none, filled through the accelerator's `weights`
#: stream before the first sequence (the iCE40 UP5K's SPRAM holds no initial contents).
WEIGHT_STORAGE = ("rom", "load")
#: Bits of one beat of the weight-load stream: a byte, so a byte link (the board's UART)
#: carries the image as it is.
WEIGHT_BEAT = 8


def check_weights(weights) -> None:
    if weights not in WEIGHT_STORAGE:
        raise PlanError(f"weights must be one of {', '.join(WEIGHT_STORAGE)}, not {weights!r}")


def pack_lanes(row, width: int) -> int:
    """A memory word as one unsigned integer: lane k's `width` bits at bit k * width."""
    mask = (1 << width) - 1
    return sum((int(w) & mask) << (lane * width) for lane, w in enumerate(row))


def word_beats(width: int) -> int:
    """Beats (bytes) of one `width`-bit word on a load stream."""
    return -(-width // WEIGHT_BEAT)


def load_image(words, width: int) -> bytes:
    """A load stream's bytes, a byte a beat: `words` (unsigned integers of `width` bits) in
    address order, each as `word_beats` bytes least significant first (the top byte's bits
    past the word are 0). `rom.LoadedRAM` takes them so."""
    beats = word_beats(width)
    return b"".join(int(w).to_bytes(beats, "little") for w in words)


def weight_word_beats(plan: Plan) -> int:
    """Beats (bytes) of one weight word on the weight-load stream."""
    return word_beats(plan.weight_width * plan.lanes)


def weight_image(plan: Plan) -> bytes:
    """The weight-load stream: every weight word in address order (lane 0 in the low
    bits, as in weights.hex), `load_image`."""
    return load_image((pack_lanes(row, plan.weight_width) for row in plan.weight_words),
                      plan.weight_width * plan.lanes)


def _lane_slice(vec: np.ndarray, block_start: int, row0: int, rows: int, P: int) -> list:
    """Lanes' values for rows row0..row0+P-1 of a block of `rows` rows (zero past the end)."""
    out = [0] * P
    for lane in range(P):
        if row0 + lane < rows:
            out[lane] = int(vec[block_start + row0 + lane])
    return out
