"""The memories of the multiplier-free (ternary) datapath, beside `plan.Plan`'s layouts.

Every MATRIX pass (each layer, then the head) is a sum over levels: per level i an integer
plane T_i in {-1, 0, +1} and a scale a_i per row, W = sum_i (a_i << s_i) T_i. A layer's
planes are its `hwgen.ternary` levels (s_i = F - f_i); so are the head's when it has levels
(`QModel.ternary_head`), else its 8-bit weights are their own non-adjacent form (level b:
digit b of each weight, scale 1, s_b = b), so the head runs on the same adders with no
multiplier either.

Storage: compressed columns, lane by lane. Lane k serves rows k, k + P, ... of every gate
block (as in the 8-bit design); per column it has a list of its nonzero digits, each with
the level and row group it belongs to (its level-sum address). Stored word e of a column
holds entry e of every lane's list (a lane whose list is shorter skips): a column costs
its busiest lane's count of nonzero digits. Word-level sparsity (a weight zero in every
level) and bit-level sparsity (a zero digit of a level) both become cycles, at the
granularity of one digit per lane rather than of a P-lane word: with unstructured pruning
a P-lane word is all zero only with probability s^P (43 % at s = 0.9, P = 8), so skipping
whole row-group words (or zero blocks) would keep most of the dense work. A pointer ROM
holds, per column, its first stored word and their count.

Level sums: S_(side, i)[g] accumulates T_i x (add, subtract or skip) for accumulator word g
of the pass; its address is side << b | i * A_side + g' (A_side: the side's accumulator words,
g' the word among them; b: `TernaryPlan.local_bits`). An entry stores per lane its digit's
sign and only the side-local part (the column names its side: its pointer holds it), and a
lane with no digit in the word names the side's last local address, a dump word that no
term reads: no nonzero mask, and the entry ROM is a lane's 1 + b bits a word narrower per
lane than with a mask and the side (which let 9 lanes fit the UP5K's block RAM). The
combine then adds, per accumulator word, one term per (side, level) feeding it with a
stored digit in its rows (sparsity also shortens the combine): (a_i * S) << (s_i + shift_side) (the term ROM, in order; a word's first term starts from the
bias or, in a delta pass, the stored word; its last writes the sum). A term's scale is
stored aligned, a_i << (s_i + shift_side): the product is then the whole shift, and the
combiner needs no shifter.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..fixed import bits_for
from ..qmodel import QModel
from .plan import Plan, PlanError, load_image


def naf_digits(w: np.ndarray, levels: int | None = None) -> np.ndarray:
    """Non-adjacent form of integers: (L, *w.shape) digits in {-1, 0, 1},
    w = sum_b 2^b digit_b, no two adjacent digits nonzero (a third of them nonzero on
    average, against a half in two's complement)."""
    w = np.asarray(w, dtype=np.int64).copy()
    out = []
    while np.any(w != 0) or (levels is not None and len(out) < levels):
        d = np.where(w & 1, 2 - (w & 3), 0)   # w mod 4 = 1 -> +1, 3 -> -1
        out.append(d)
        w = (w - d) >> 1
    if not out:
        out.append(np.zeros_like(w))
    return np.stack(out).astype(np.int8)


#: Scale bits the combiner applies a cycle: per lane that many masked adds of the
#: accumulator's width. Fewer adders, more combine cycles (`TernaryPlan.digits_per_term`).
DEFAULT_SCALE_STEP = 1


@dataclass
class PassLevels:
    """One pass's levels: per side (x, h; the head has one), planes (L, R, C) and shifted
    scales; `cols` and `blocks` say which columns and gate blocks each side has."""

    sides: list              # [(planes (L, R, C) int, scales (L, R) int, shifts (L,) int,
                             #   blocks tuple, first column of the side)]
    rows_per_block: int      # H of a layer, O of the head
    groups: int              # row groups per block
    n_blocks: int            # accumulator blocks of the pass
    acc_base: int
    b_base: int
    cols: int

    @property
    def levels(self) -> int:
        return max(len(s[0]) for s in self.sides)

    @property
    def acc_words(self) -> int:
        return self.n_blocks * self.groups

    def side_words(self, side: int) -> int:
        """Level sums of one side: its levels x its blocks' accumulator words."""
        planes, _, _, blocks, _ = self.sides[side]
        return len(planes) * len(blocks) * self.groups

    def local_addr(self, side: int, level: int, word: int) -> int:
        """Level sum (level, accumulator word `word` of the pass) within its side's."""
        blocks = self.sides[side][3]
        blk, g = divmod(word, self.groups)
        return (level * len(blocks) + blocks.index(blk)) * self.groups + g


def level_side(t, shift: int, blocks: tuple, first: int) -> tuple:
    """A pass side of `TernaryMatrix` t: its planes, scales and their shifts (F - f_i, plus
    the side's alignment `shift`), the blocks it feeds, its first column."""
    if np.any(t.alpha < 0):
        raise PlanError("ternary scales must be >= 0")
    shifts = np.array([t.frac - f.frac + shift for f in t.fmts])
    return (t.planes.astype(np.int64), t.alpha, shifts, blocks, first)


def pass_levels(qm: QModel, plan: Plan) -> list[PassLevels]:
    """Each layer's ternary levels, then the head's: its own levels when it has them
    (`QModel.ternary_head`), else its 8-bit weights' non-adjacent form."""
    out = []
    for ql, lp, mats in zip(qm.layers, plan.layers, qm.ternary):
        sides = []
        for side, shift, blocks, first in (("x", ql.shift_x, lp.blocks_x, 0),
                                           ("h", ql.shift_h, lp.blocks_h, lp.input_size)):
            if mats[side] is not None:   # (SRU has no recurrent matrix: the input side alone)
                sides.append(level_side(mats[side], shift, blocks, first))
        out.append(PassLevels(sides, lp.hidden_size, lp.groups_per_gate, lp.n_blocks,
                              lp.acc_base, lp.b_base, lp.columns))
    hp, w, t = plan.head, qm.head.weight, qm.ternary_head
    if t is not None:   # the head's own levels, as a layer side's
        sides = [level_side(t, 0, (0,), 0)]
    else:
        digits = naf_digits(w)
        ones = np.ones((len(digits), w.shape[0]), dtype=np.int64)
        sides = [(digits.astype(np.int64), ones, np.arange(len(digits)), (0,), 0)]
    out.append(PassLevels(sides, hp.out_size, hp.groups, 1, hp.acc_base, hp.b_base,
                          hp.in_size))
    return out


@dataclass
class TernaryPlan:
    """Contents of the ternary datapath's ROMs (see the module docstring).

    entries : per stored word (digits (P,) in {-1, 0, 1}, side-local S addresses (P,); a
        lane without a digit: 0 and `dump`), columns in pass order.
    pointers : per column of every pass (first entry, entry count, side).
    ptr_base : per pass, the pointer index of its column 0.
    terms : per combine term (S address, acc address, bias address, first, last,
        aligned scales (P,), gate block, first of its row group, last of its row group),
        passes in order, each pass's row group by row group (gate by gate within one);
        term_base[p]..term_base[p + 1] are pass p's.
    scale_step : scale bits the combiner applies a cycle (`term_digits` cycles a term).
    """

    lanes: int
    levels: int               # of the layers (the head's are its NAF digits)
    entries: list
    pointers: list
    ptr_base: list
    terms: list
    term_base: list
    s_depth: int
    s_width: int
    scale_bits: int
    scale_step: int
    local_bits: int           # of an S address within its side (the side is the top bit)

    @property
    def dump(self) -> int:
        """The side-local S address a lane without a digit adds into (no term reads it)."""
        return (1 << self.local_bits) - 1

    @property
    def max_count(self) -> int:
        return max([c for _, c, _ in self.pointers] + [1])

    def column_counts(self, p: int) -> list:
        """Stored words of each column of pass p."""
        return [c for _, c, _ in self.pointers[self.ptr_base[p]:self.ptr_base[p + 1]]]

    def pass_terms(self, p: int) -> int:
        return self.term_base[p + 1] - self.term_base[p]

    def term_digits(self, term) -> int:
        """Combine cycles of one term: its lanes' scales, `scale_step` bits a cycle, lowest
        first, up to the highest nonzero bit (at least one: it also clears S)."""
        return max(1, -(-max(term[5]).bit_length() // self.scale_step))

    def pass_digits(self, p: int) -> int:
        """Combine cycles of pass p's terms."""
        return sum(self.term_digits(t) for t in self.terms[self.term_base[p]:self.term_base[p + 1]])


def make_ternary_plan(qm: QModel, plan: Plan, scale_step: int | None = None) -> TernaryPlan:
    """`scale_step`: scale bits the combiner applies a cycle (default `DEFAULT_SCALE_STEP`,
    capped at the scales' width)."""
    if qm.ternary is None:
        raise PlanError("the model has no ternary levels (hwgen.ternary.ternarize)")
    P = plan.lanes
    passes = pass_levels(qm, plan)
    entries, pointers, ptr_base, terms, term_base = [], [], [], [], []
    # a side's level sums and its dump word
    local_bits = max(pl.side_words(k) for pl in passes for k in range(len(pl.sides))).bit_length()
    dump = (1 << local_bits) - 1

    def s_addr(pl, side, level, word):
        return side << local_bits | pl.local_addr(side, level, word)
    for pl in passes:
        ptr_base.append(len(pointers))
        term_base.append(len(terms))
        G, H = pl.groups, pl.rows_per_block
        for j in range(pl.cols):
            k = 1 if len(pl.sides) > 1 and j >= pl.sides[1][4] else 0
            planes, _, _, blocks, first = pl.sides[k]
            start = len(entries)
            # lane k takes the rows k, k + P, ... of every block, and its own list of
            # nonzero (level, row group) digits: a column costs its busiest lane's count
            todo = [[] for _ in range(P)]
            for blk in blocks:
                for g in range(G):
                    for lane in range(min(P, H - g * P)):
                        r = blk * H + g * P + lane
                        for i in range(len(planes)):
                            d = int(planes[i, r, j - first])
                            if d:
                                todo[lane].append((d, pl.local_addr(k, i, blk * G + g)))
            for e in range(max(len(t) for t in todo)):
                word = [t[e] if e < len(t) else (0, dump) for t in todo]
                entries.append(([d for d, _ in word], [a for _, a in word]))
            pointers.append((start, len(entries) - start, k))
        # row group by row group, gate by gate: ACTIVATE takes a group as soon as its gate
        # words are written (`ScaleCombiner`'s fills)
        for g, blk in itertools.product(range(G), range(pl.n_blocks)):
            word = blk * G + g
            rows = slice(blk * H + g * P, blk * H + min(g * P + P, H))
            feeds = [(k, i) for k, side in enumerate(pl.sides) if blk in side[3]
                     for i in range(len(side[0]))]
            # a level sum that no stored digit adds into stays zero: its term is left out
            # (a word with none keeps one, of scale 0: a cycle that starts the word from
            # its bias and writes it)
            reached = [(k, i) for k, i in feeds if np.any(pl.sides[k][0][i, rows])]
            for n, (k, i) in enumerate(reached or feeds[:1]):
                _, scales, shifts, _, _ = pl.sides[k]
                lanes = [int(scales[i, blk * H + g * P + lane]) << int(shifts[i])
                         if g * P + lane < H and reached else 0 for lane in range(P)]
                last = n == max(len(reached), 1) - 1
                terms.append((s_addr(pl, k, i, word), pl.acc_base + word, pl.b_base + word,
                              n == 0, last, lanes, blk, n == 0 and blk == 0,
                              last and blk == pl.n_blocks - 1))
    ptr_base.append(len(pointers))
    term_base.append(len(terms))
    # |S| <= columns x |largest delta|: its exact range (a delta is value_width + 1 bits)
    cols = max(pl.cols for pl in passes)
    span = cols << plan.value_width
    s_width = bits_for(-span, span)
    scale_bits = max(max(int(max(t[5])) for t in terms).bit_length(), 1)
    step = min(scale_step or DEFAULT_SCALE_STEP, scale_bits)
    s_depth = max(len(pl.sides) for pl in passes) << local_bits
    return TernaryPlan(P, qm.ternary[0]["x"].levels, entries, pointers, ptr_base, terms,
                       term_base, s_depth, s_width, scale_bits, step, local_bits)


def entry_words(tp: TernaryPlan) -> list:
    """Entry ROM words: negative mask (P bits), then each lane's side-local S address (the
    dump word where the lane has no digit)."""
    P, ab = tp.lanes, tp.local_bits
    out = []
    for digits, addrs in tp.entries:
        neg = sum(1 << k for k, d in enumerate(digits) if d < 0)
        out.append(neg | sum(a << (P + k * ab) for k, a in enumerate(addrs)))
    return out or [0]


def entry_width(tp: TernaryPlan) -> int:
    return tp.lanes * (1 + tp.local_bits)


def entry_image(tp: TernaryPlan) -> bytes:
    """The entry words as a design whose entries load (weights="load") takes them on its
    `weights` stream, a byte a beat (`plan.load_image`)."""
    return load_image(entry_words(tp), entry_width(tp))


def digit_words(tp: TernaryPlan) -> list:
    """Digit ROM words: per term, per digit d (`TernaryPlan.term_digits`), bits
    d * scale_step ... of each lane's scale, `scale_step` bits a lane."""
    step, mask = tp.scale_step, (1 << tp.scale_step) - 1
    return [sum(((a >> d * step) & mask) << k * step for k, a in enumerate(term[5]))
            for term in tp.terms for d in range(tp.term_digits(term))]
