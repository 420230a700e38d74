"""Pins of the bare core: a serial pin shell for small packages, Gowin pin constraints.

Placing the bare core puts every top-level port bit on a package pin. When the core has
more port bits than the package has pins (a 16-bit interface on the 39-pin UP5K SG48),
the flow wraps it in :func:`pin_shell_verilog`: the input payload arrives through a
shift register and the output payload leaves through one, so the core is placed whole
with 8 pins, at the cost of ``in_payload_bits + out_payload_bits`` flip-flops (and a
weight-load stream's payload the same way, with 3 pins more).
"""
from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

from .design import Design
from .errors import SynthError

SHELL_TOP = "hwgen_pin_shell"


def pin_shell_verilog(design: Design) -> str:
    """Verilog of a shell around ``design.top`` with serial payload pins."""
    iw, ow, ww = design.in_payload_bits, design.out_payload_bits, design.weight_beat_bits
    # a weight-load stream (weights="load"), driven from pins too: undriven, its memory
    # would never load and Yosys could drop the datapath behind it
    w_ports = ", input wi, input w_valid, output w_ready" if ww else ""
    w_reg = f"\n  reg [{ww - 1}:0] w_shift;" if ww else ""
    w_shift = f"\n    w_shift <= {{w_shift[{ww - 2}:0], wi}};" if ww else ""
    w_core = (",\n    .weights__payload(w_shift), .weights__valid(w_valid), "
              ".weights__ready(w_ready)" if ww else "")
    return f"""// Pin shell for place and route of the bare core on a small package.
module {SHELL_TOP} (input clk, input rst, input si, input i_valid, output i_ready,
                    output so, output o_valid, input o_ready{w_ports});
  reg [{iw - 1}:0] i_shift;{w_reg}
  reg [{ow - 1}:0] o_shift;
  wire [{ow - 1}:0] o_payload;
  always @(posedge clk) begin
    i_shift <= {{i_shift[{iw - 2}:0], si}};{w_shift}
    if (o_valid && o_ready) o_shift <= o_payload;
    else o_shift <= {{1'b0, o_shift[{ow - 1}:1]}};
  end
  assign so = o_shift[0];
  {design.top} core (.clk(clk), .rst(rst),
    .i__payload(i_shift), .i__valid(i_valid), .i__ready(i_ready),
    .o__payload(o_payload), .o__valid(o_valid), .o__ready(o_ready){w_core});
endmodule
"""


def _gowin_pins(device: str, family: str) -> tuple[list, list]:
    """``(free pins, global clock pins)`` of a Gowin device's package, from Apicula."""
    try:
        from apycula import chipdb
    except ImportError:
        raise SynthError("nextpnr", "Gowin place and route needs the apycula package "
                                    "(pip install apycula)") from None
    db = chipdb.load_chipdb(str(importlib.resources.files("apycula") / f"{family}.msgpack.xz"))
    package, variant, _speed = db.packages[device]
    pins = db.pinout[variant][package]
    free = [pin for pin, (_name, cfgs) in pins.items() if not cfgs]
    clocks = [pin for pin, (_name, cfgs) in pins.items()
              if any(c.startswith("GCLKT") for c in cfgs)]
    return free, clocks


def gowin_cst(netlist_path, top: str, device: str, family: str,
              clock: str = "clk") -> str | None:
    """A Gowin ``.cst`` placing every port bit of ``top`` on a free pin, the clock on a
    global clock pin; None when the package has too few free pins.

    Raises
    ------
    SynthError
        When apycula, which knows the package pins, is not installed.
    """
    netlist = json.loads(Path(netlist_path).read_text())
    ports = netlist["modules"][top]["ports"]
    free, clocks = _gowin_pins(device, family)
    free_iter = iter(free)
    lines = []
    for name, port in ports.items():
        for index in range(len(port["bits"])):
            bit = name if len(port["bits"]) == 1 else f"{name}[{index}]"
            pin = clocks[0] if name == clock and clocks else next(free_iter, None)
            if pin is None:
                return None
            lines.append(f'IO_LOC "{bit}" {pin};')
    return "\n".join(lines) + "\n"
