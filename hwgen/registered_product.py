"""The registered product: p = a * b (signed), both operands and the product registered.

A wide MAC array's multipliers are instances of this one Verilog module (`MODULE`), so that a
device whose multiplier has input and output registers of its own gets them: Yosys maps a
``$mul`` onto the ECP5's MULT18X18D with those registers unused, and the fabric registers
around it then sat far from it (the 64-lane design's longest path: a delta copy, 3.7 ns of
routing into the MULT18X18D, 3.9 ns through it, 3.4 ns out to the product register).

A design folder carries the module's behavioural form (`FILE`, `verilog()`): what the
simulators run and every target but the ECP5 synthesizes (the iCE40's Yosys packs the
registers into its SB_MAC16 by itself). The ECP5's synthesis reads `verilog("ecp5")`
instead: the MULT18X18D with its A, B and output registers on the one clock, always
enabled, never reset (the behavioural registers have no reset either), for operands of at
most 18 bits; wider operands keep the behavioural form there too.
"""
from __future__ import annotations

from pathlib import Path

MODULE = "hwgen_registered_product"
FILE = f"{MODULE}.v"
#: Clock edges from an operand to its product.
LATENCY = 2
#: Operand width of the ECP5's MULT18X18D.
ECP5_WIDTH = 18
#: Verilog attribute of the device multipliers in the device form (`after_synthesis`).
MARK = "hwgen_registered_product"

_HEADER = f"""\
// {MODULE}: p = a * b (signed), two clock edges after a and b: the operands and the
// product are registered (no reset). Written by hwgen (hwgen/registered_product.py).
module {MODULE} #(parameter A_WIDTH = 18, parameter B_WIDTH = 18) (
  input clk,
  input signed [A_WIDTH-1:0] a,
  input signed [B_WIDTH-1:0] b,
  output signed [A_WIDTH+B_WIDTH-1:0] p
);
"""

_BEHAVIOURAL = """\
  reg signed [A_WIDTH-1:0] a_q;
  reg signed [B_WIDTH-1:0] b_q;
  reg signed [A_WIDTH+B_WIDTH-1:0] p_q;
  always @(posedge clk) begin
    a_q <= a;
    b_q <= b;
    p_q <= a_q * b_q;
  end
  assign p = p_q;
"""


def _indent(text: str, by: str) -> str:
    return "".join(by + line if line.strip() else line for line in text.splitlines(True))


def _ecp5_body() -> str:
    w = ECP5_WIDTH
    ports = [f".A{i}(a_ext[{i}])" for i in range(w)] + [f".B{i}(b_ext[{i}])" for i in range(w)]
    ports += [f".C{i}(1'b0)" for i in range(w)] + [f".P{i}(p_full[{i}])" for i in range(2 * w)]
    ports += [".SIGNEDA(1'b1)", ".SIGNEDB(1'b1)", ".SOURCEA(1'b0)", ".SOURCEB(1'b0)",
              ".CLK0(clk)", ".CE0(1'b1)", ".RST0(1'b0)"]
    lines = [f"  generate if (A_WIDTH <= {w} && B_WIDTH <= {w}) begin : dsp",
             f"    wire signed [{w - 1}:0] a_ext = a;   // sign-extended",
             f"    wire signed [{w - 1}:0] b_ext = b;",
             f"    wire [{2 * w - 1}:0] p_full;",
             "    // its registers are switched on after synthesis (`after_synthesis`)",
             f"    (* {MARK} *)",
             "    MULT18X18D mult (",
             *(f"      {p}," for p in ports[:-1]), f"      {ports[-1]}",
             "    );",
             "    assign p = p_full[A_WIDTH+B_WIDTH-1:0];",
             "  end else begin : fabric",
             _indent(_BEHAVIOURAL, "  ").rstrip("\n"),
             "  end endgenerate", ""]
    return "\n".join(lines)


#: The ECP5 multiplier's parameters that register A, B and the product on CLK0 (CE0, RST0).
ECP5_REGISTERS = {f"REG_{reg}_{what}": value for reg in ("INPUTA", "INPUTB", "OUTPUT")
                  for what, value in (("CLK", "CLK0"), ("CE", "CE0"), ("RST", "RST0"))}


def verilog(family: str | None = None) -> str:
    """The module's Verilog: behavioural (`family` None), or for a device family that has a
    registered multiplier primitive ("ecp5"); None for a family without one."""
    if family is None:
        return _HEADER + _BEHAVIOURAL + "endmodule\n"
    if family == "ecp5":
        return _HEADER + _ecp5_body() + "endmodule\n"
    return None


def used_by(paths) -> bool:
    """Whether a design's Verilog files `paths` include the module's."""
    return any(Path(path).name == FILE for path in paths)


def for_synthesis(path, family: str) -> str | None:
    """The Verilog that synthesis for `family` reads instead of the design file `path`, or
    None to read the file as it is."""
    return verilog(family) if Path(path).name == FILE else None


def before_reading(family: str) -> list[str]:
    """Yosys commands before the design is read, for the device form of `family`: its
    primitives' library (so that ``hierarchy -check`` knows the multiplier)."""
    return [f"read_verilog -lib +/{family}/cells_bb.v"] if verilog(family) else []


def after_synthesis(family: str) -> list[str]:
    """Yosys commands after synthesis, for the device form of `family`: the multipliers'
    registers switched on. (Given as parameters of the instance in the Verilog, Yosys 0.70
    derives the primitive inside the module and then, re-reading the flattened top, loses
    the module: "not part of the design".)"""
    if family != "ecp5":
        return []
    return [f'setparam -set {name} "{value}" t:MULT18X18D a:{MARK} %i'
            for name, value in ECP5_REGISTERS.items()]
