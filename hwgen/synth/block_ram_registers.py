"""ECP5 block RAM output registers: the register after a DP16KD's read moved into the block RAM.

A DP16KD read without its output register (``REGMODE`` ``NOREG``, the only mode Yosys'
memory mapping uses) is slow to leave the block: 5.61 ns clock-to-output at speed grade 6 in
nextpnr's timing database, against 0.97 ns with it (``OUTREG``). The design registers every
block RAM read straight away (`hwgen.rtl.rom`: a bank's output goes into a register with no
reset, always enabled), and at 64 lanes that register, placed 70 columns from its block RAM,
was the longest path. ``OUTREG`` is that register inside the block: the read data pass one
more register, clocked by the port's clock and enabled by its ``OCE``, reset by its ``RST``.

So after synthesis, on the Yosys JSON netlist, a DP16KD port (not in the 36-bit pseudo dual
port mode, whose halves share a read port) takes its own output register where

- the port reads with ``REGMODE`` ``NOREG``, ``OCE`` tied to 1 and ``RST`` to 0, on the
  rising edge of a clock net, and
- every data output that is used feeds exactly one ``TRELLIS_FF`` and nothing else, and that
  flip-flop is clocked by the same net on the rising edge, always enabled (``CEMUX`` 1),
  never reset (``LSR`` tied to 0), and reset to 0 by the global reset exactly where the
  block RAM is (``GSR``: disabled in `hwgen synth`'s netlists, enabled in amaranth's board
  builds; the output register's reset value is 0).

The flip-flops are removed and their outputs driven by the block's data outputs instead: the
same register, the same cycle, nothing else changed. Any other port is left as it was.
"""
from __future__ import annotations

import json
from pathlib import Path
import re

RAM, FF = "DP16KD", "TRELLIS_FF"
#: The data width of a DP16KD port in the pseudo dual port mode (both halves read on B).
PDP_WIDTH = 36
DATA_OUTPUTS = 18


def _param(cell: dict, name: str, default: str = "") -> str:
    """A parameter as text (Yosys pads some string parameters with a space)."""
    return str(cell.get("parameters", {}).get(name, default)).strip()


def param_int(value) -> int:
    """A Yosys JSON parameter as an integer (a binary string, or an int with
    ``-compat-int``)."""
    return int(value, 2) if isinstance(value, str) else int(value)


def _width(cell: dict, side: str) -> int:
    return param_int(cell.get("parameters", {}).get(f"DATA_WIDTH_{side}", "0"))


def _net(cell: dict, port: str):
    """The one bit a port connects to: a net number, a constant "0"/"1", or None."""
    bits = cell.get("connections", {}).get(port)
    return bits[0] if bits and len(bits) == 1 else None


def _plain_register(ff: dict, clock: int, gsr: str) -> bool:
    """A flip-flop clocked by `clock` (rising edge), always enabled, never reset but by the
    global reset where the block RAM's output register is (`gsr`), and then to 0 as it is."""
    return (_param(ff, "CLKMUX") == "CLK" and _net(ff, "CLK") == clock
            and _param(ff, "CEMUX") == "1" and _param(ff, "GSR") == gsr
            and _param(ff, "REGSET", "RESET") == "RESET"
            and _net(ff, "LSR") in ("0", None) and _param(ff, "LSRMUX", "LSR") == "LSR")


def _users(cells: dict) -> dict:
    """Per net number, the (cell, port) inputs it drives."""
    users = {}
    for name, cell in cells.items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            if dirs.get(port) != "output":
                for bit in bits:
                    if isinstance(bit, int):
                        users.setdefault(bit, []).append((name, port))
    return users


def _absorbable(cells: dict, users: dict, ram: dict, side: str) -> dict | None:
    """{data output port: its flip-flop} for a port whose register can move into the block,
    else None."""
    clock = _net(ram, f"CLK{side}")
    if (_param(ram, f"REGMODE_{side}", "NOREG") != "NOREG" or not isinstance(clock, int)
            or _param(ram, f"CLK{side}MUX", f"CLK{side}") != f"CLK{side}"
            or _net(ram, f"OCE{side}") != "1" or _net(ram, f"RST{side}") != "0"):
        return None
    taken = {}
    for k in range(DATA_OUTPUTS):
        bit = _net(ram, f"DO{side}{k}")
        if not isinstance(bit, int) or bit not in users:
            continue  # unused output
        driven = users[bit]
        if len(driven) != 1:
            return None
        name, port = driven[0]
        ff = cells[name]
        if (ff.get("type") != FF or port not in ("DI", "M")
                or not _plain_register(ff, clock, _param(ram, "GSR", "ENABLED"))):
            return None
        taken[f"DO{side}{k}"] = name
    return taken or None


def absorb_output_registers(netlist: dict) -> dict:
    """Move the registers after DP16KD reads into the block RAMs (the module docstring), in
    place; ``{"ports": block RAM ports given their output register, "registers": flip-flops
    removed}``."""
    ports = registers = 0
    for module in netlist.get("modules", {}).values():
        cells = module.get("cells", {})
        users = _users(cells)
        for name in sorted(n for n, c in cells.items() if c.get("type") == RAM):
            ram = cells[name]
            if _width(ram, "A") == PDP_WIDTH:
                continue
            for side in "AB":
                taken = _absorbable(cells, users, ram, side)
                if taken is None:
                    continue
                for port, ff_name in taken.items():
                    ram["connections"][port] = list(cells.pop(ff_name)["connections"]["Q"])
                ram["parameters"][f"REGMODE_{side}"] = "OUTREG"
                ports += 1
                registers += len(taken)
    return {"ports": ports, "registers": registers}


def absorb_in_file(path) -> dict:
    """`absorb_output_registers` on a Yosys JSON netlist file, rewritten where it changed."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    done = absorb_output_registers(netlist)
    if done["ports"]:
        path.write_text(json.dumps(netlist) + "\n")
    return done


#: The board build's step between Yosys and nextpnr (`hwgen.boards.build`), a command line
#: that takes the netlist's name: it prints what moved (`summary`).
COMMAND = ('-c "import sys; from hwgen.synth.block_ram_registers import absorb_in_file, '
           'summary; print(summary(absorb_in_file(sys.argv[1])))"')


def summary(done: dict) -> str:
    """The line that says what moved (`absorb_output_registers`' result)."""
    return (f"block RAM output registers: {done['ports']} read ports "
            f"({done['registers']} FFs moved into them)")


def from_log(text: str) -> dict | None:
    """The counts of the last `summary` line in a log, None without one."""
    found = re.findall(r"block RAM output registers: (\d+) read ports \((\d+) FFs", text)
    return {"ports": int(found[-1][0]), "registers": int(found[-1][1])} if found else None
