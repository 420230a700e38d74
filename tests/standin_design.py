"""A stand-in accelerator with the design-folder contract, for the FPGA flow and board tests.

On every time step it sums the step's input elements, saturating to the output width after
each addition, and emits that sum as one output element with ``last=1`` (O = 1, the head
runs on every step). It honours the stream rules: it takes no input while an output waits.

``ballast`` adds that many independent registered multipliers (the input element times
a delayed input element) XOR-reduced onto one extra output pin, ``ballast``: they do not
change the streams, only the resources, so a test can overflow a device's DSPs.
"""
from __future__ import annotations

import operator
from functools import reduce
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.design_folder import seal
from hwgen.interface import input_payload, output_payload


def _saturate(value, width: int):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


class StandIn(wiring.Component):
    """Running sum of each step's elements, saturating.

    Parameters
    ----------
    in_width : width of the signed input data.
    out_width : width of the signed output data.
    ballast : number of extra 16x16-ish multipliers kept alive on the ``ballast`` pin.

    Members
    -------
    i : In(stream.Signature(StructLayout(data, step_end, seq_end)))
    o : Out(stream.Signature(StructLayout(data, last)))
    """

    def __init__(self, in_width: int = 8, out_width: int = 12, ballast: int = 0):
        self.in_width, self.out_width, self.n_ballast = in_width, out_width, ballast
        members = {
            "i": In(stream.Signature(input_payload(in_width).layout())),
            "o": Out(stream.Signature(output_payload(out_width).layout())),
        }
        if ballast:
            members["ballast"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(self.out_width))
        nxt = Signal(signed(self.out_width))
        m.d.comb += [
            nxt.eq(_saturate(acc + self.i.payload.data, self.out_width)),
            self.i.ready.eq(~self.o.valid),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(self.i.payload.step_end):
                m.d.sync += [acc.eq(0), self.o.payload.data.eq(nxt), self.o.payload.last.eq(1),
                             self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += acc.eq(nxt)
        if self.n_ballast:
            width = max(self.in_width, 16)
            x = Signal(signed(width))
            m.d.sync += x.eq(self.i.payload.data)
            taps = [x]
            products = []
            for k in range(self.n_ballast):
                tap, prod = Signal(signed(width)), Signal(signed(2 * width))
                m.d.sync += [tap.eq(taps[-1] + k), prod.eq(x * tap)]
                taps.append(tap)
                products.append(prod)
            mix = Signal(2 * width)
            m.d.sync += [mix.eq(reduce(operator.xor, products)), self.ballast.eq(mix.xor())]
        return m


def model(inputs, out_width: int = 12) -> np.ndarray:
    """The stand-in's outputs for (T, I) integer inputs: (T, 1)."""
    lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    out = []
    for step in np.asarray(inputs, dtype=np.int64):
        acc = 0
        for x in step:
            acc = min(hi, max(lo, acc + int(x)))
        out.append([acc])
    return np.array(out, dtype=np.int64).reshape(-1, 1)


def write_standin(out_dir, name: str = "standin", in_width: int = 8, out_width: int = 12,
                  input_size: int = 3, ballast: int = 0, broken: bool = False) -> Path:
    """Write a design folder (Verilog + manifest.json) for the stand-in; return its path.

    ``broken`` appends a syntax error to the Verilog, for the flow's error path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    top = f"hwgen_{name}"
    text = verilog.convert(StandIn(in_width, out_width, ballast), name=top, emit_src=False)
    if broken:
        text += "\nmodule broken(input a; endmodule\n"
    (out_dir / f"{top}.v").write_text(text)
    manifest = {
        "name": name,
        "interface": {"top": top, "verilog": [f"{top}.v"], "clock": "clk", "reset": "rst",
                      "in_width": in_width, "out_width": out_width},
        "sizes": {"input_size": input_size, "output_size": 1},
        "head_mode": "every",
        "cycles": {"per_step": input_size + 1, "per_sequence_overhead": 0},
    }
    seal(out_dir, manifest)
    return out_dir
