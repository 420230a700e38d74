"""A tiny stand-in accelerator with the real one's stream interface, for testing `hwgen.sim`.

Per step the stand-in reads `input_size` signed elements. In head mode ``"every"`` it then
emits two values: the step's sum saturated to the output width, and the step's maximum.
In head mode ``"last"`` it keeps a recurrent state ``h = sat(h + step_sum)`` and the
running maximum, and emits ``[h, max]`` once after the sequence's last step. A few busy
cycles after every step make it deassert ``i.ready``, like the real accelerator does.

`write_standin` writes a design folder in the layout `hwgen.sim` reads: the Verilog,
``manifest.json`` and ``vectors.npz`` (from `standin_model`, the numpy reference).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.back import verilog
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.design_folder import seal
from hwgen.interface import input_payload, output_payload

OUTPUT_SIZE = 2
BUGS = ("off_by_one", "unstable")


def _saturate(value, width):
    return np.clip(value, -(1 << (width - 1)), (1 << (width - 1)) - 1)


def standin_model(inputs: np.ndarray, head_mode: str, out_width: int) -> np.ndarray:
    """Return the stand-in's outputs for integer `inputs` of shape (N, T, I).

    The shape is (N, 2) for head mode ``"last"`` and (N, T, 2) for ``"every"``.
    """
    sums = inputs.sum(axis=2)
    maxs = inputs.max(axis=2)
    if head_mode == "every":
        return np.stack([_saturate(sums, out_width), maxs], axis=-1).astype(np.int64)
    h = np.zeros(inputs.shape[0], dtype=np.int64)
    for t in range(inputs.shape[1]):
        h = _saturate(h + sums[:, t], out_width)
    return np.stack([h, maxs.max(axis=1)], axis=-1).astype(np.int64)


class _State(enum.Enum):
    INPUT = 0
    BUSY = 1
    OUTPUT = 2


class StandIn(wiring.Component):
    """The stand-in accelerator.

    Parameters
    ----------
    in_width, out_width : int
        Widths of the signed input and output data.
    head_mode : ``"every"`` or ``"last"``
        Emit outputs after every step or once per sequence.
    busy : int
        Idle cycles after each step, during which ``i.ready`` is low.
    broken : tuple of str
        Deliberate bugs, to prove that the testbench catches them. ``"off_by_one"`` adds
        one to the maximum output whenever a step's first element is the most negative
        input value. ``"unstable"`` changes the output payload for a cycle after it has
        waited two cycles for ``o.ready``, which breaks the stream rules (so it shows only
        under backpressure).

    Members
    -------
    i : In(stream.Signature(data, step_end, seq_end))
        Input elements.
    o : Out(stream.Signature(data, last))
        Output elements, ``last`` on the second of each pair.
    """

    def __init__(self, in_width=8, out_width=9, head_mode="every", busy=2, broken=()):
        for bug in broken:
            if bug not in BUGS:
                raise ValueError(f"Bug must be one of {BUGS}, not {bug!r}")
        self.in_width, self.out_width = in_width, out_width
        self.head_mode, self.busy, self.broken = head_mode, busy, broken
        in_layout = input_payload(in_width).layout()
        out_layout = output_payload(out_width).layout()
        super().__init__({"i": In(stream.Signature(in_layout)),
                          "o": Out(stream.Signature(out_layout))})

    def elaborate(self, platform):
        m = Module()
        wo = self.out_width
        lo, hi = -(1 << (wo - 1)), (1 << (wo - 1)) - 1

        state = Signal(_State)
        first = Signal(init=1)        # next element is the first of its step
        seq_first = Signal(init=1)    # next element is the first of its sequence
        seq_done = Signal()
        step_sum = Signal(signed(wo + 8))
        step_max = Signal(signed(self.in_width))
        seq_max = Signal(signed(self.in_width))
        h = Signal(signed(wo))
        flag = Signal()               # the broken variant's trigger
        count = Signal(range(max(self.busy, 1) + 1))
        index = Signal()
        stalled = Signal(2)
        outs = [Signal(signed(wo)), Signal(signed(wo))]

        x = self.i.payload.data
        with m.Switch(state):
            with m.Case(_State.INPUT):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    new_sum = Signal(signed(wo + 8))
                    new_max = Signal(signed(self.in_width))
                    m.d.comb += [new_sum.eq(Mux(first, x, step_sum + x)),
                                 new_max.eq(Mux(first | (x > step_max), x, step_max))]
                    m.d.sync += [step_sum.eq(new_sum), step_max.eq(new_max), first.eq(0)]
                    with m.If(first):
                        m.d.sync += flag.eq(x == -(1 << (self.in_width - 1)))
                    with m.If(self.i.payload.step_end):
                        total = Signal(signed(wo + 9))
                        m.d.comb += total.eq(Mux(seq_first, 0, h) + new_sum)
                        new_h = Mux(total < lo, lo, Mux(total > hi, hi, total))
                        new_seq_max = Mux(seq_first | (new_max > seq_max), new_max, seq_max)
                        m.d.sync += [first.eq(1), seq_first.eq(0), h.eq(new_h),
                                     seq_max.eq(new_seq_max), count.eq(self.busy),
                                     seq_done.eq(self.i.payload.seq_end), state.eq(_State.BUSY)]
                        if self.head_mode == "every":
                            sum_out = Mux(new_sum < lo, lo, Mux(new_sum > hi, hi, new_sum))
                            m.d.sync += [outs[0].eq(sum_out), outs[1].eq(new_max)]
                        else:
                            m.d.sync += [outs[0].eq(new_h), outs[1].eq(new_seq_max)]
            with m.Case(_State.BUSY):
                m.d.sync += count.eq(count - 1)
                with m.If(count == 0):
                    emit = 1 if self.head_mode == "every" else seq_done
                    m.d.sync += state.eq(Mux(emit, _State.OUTPUT, _State.INPUT))
                    if "off_by_one" in self.broken:
                        with m.If(flag):
                            m.d.sync += outs[1].eq(outs[1] + 1)
            with m.Case(_State.OUTPUT):
                out = Mux(index, outs[1], outs[0])
                if "unstable" in self.broken:
                    out = out + (stalled == 2)
                m.d.comb += [self.o.valid.eq(1), self.o.payload.last.eq(index == 1),
                             self.o.payload.data.eq(out)]
                m.d.sync += stalled.eq(stalled + 1)
                with m.If(self.o.ready):
                    m.d.sync += [index.eq(~index), stalled.eq(0)]
                    with m.If(index == 1):
                        m.d.sync += state.eq(_State.INPUT)
        with m.If((state == _State.INPUT) & self.i.valid & self.i.payload.seq_end):
            m.d.sync += seq_first.eq(1)
        return m


def write_standin(out_dir, head_mode="every", sequences=100, steps=6, input_size=3,
                  in_width=8, out_width=9, busy=2, broken=(), seed=0) -> Path:
    """Write a stand-in design folder to `out_dir` and return its path.

    Inputs are random, with one element in ten at the extreme values so that the
    saturation and the broken variant's trigger are exercised.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = out_dir.name
    top = "_".join(["standin", head_mode, *broken])
    dut = StandIn(in_width, out_width, head_mode, busy, broken)
    (out_dir / f"{top}.v").write_text(verilog.convert(dut, name=top, emit_src=False))

    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    shape = (sequences, steps, input_size)
    x = rng.integers(lo, hi + 1, shape)
    x = np.where(rng.random(shape) < 0.1, rng.choice([lo, hi], shape), x).astype(np.int64)
    np.savez(out_dir / "vectors.npz", inputs=x, outputs=standin_model(x, head_mode, out_width))

    per_step = input_size + busy + 1 + (OUTPUT_SIZE if head_mode == "every" else 0)
    manifest = {
        "name": name,
        "interface": {"top": top, "verilog": [f"{top}.v"], "clock": "clk", "reset": "rst",
                      "in_width": in_width, "out_width": out_width},
        "sizes": {"input_size": input_size, "output_size": OUTPUT_SIZE, "layers": 1,
                  "hidden_sizes": [OUTPUT_SIZE]},
        "head_mode": head_mode,
        "lanes": 1,
        "cycles": {"macs_per_step": input_size, "ideal_per_step": float(input_size),
                   "model_per_step": float(per_step)},
    }
    seal(out_dir, manifest)
    return out_dir
