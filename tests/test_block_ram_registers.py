"""The register after an ECP5 block RAM read moved into the block (REGMODE OUTREG), and only
where it is that register: same clock, always enabled, never reset, fed by nothing else."""
import copy

import pytest

from hwgen.synth.block_ram_registers import absorb_output_registers

CLK, OTHER_CLK, RESET, ENABLE = 2, 3, 4, 5
USED = 3  # data outputs used, DOA0..DOA2 (nets 100..102), registered into nets 20..22


def _netlist():
    ram = {"type": "DP16KD",
           "parameters": {"DATA_WIDTH_A": "00000000000000000000000000001001",
                          "DATA_WIDTH_B": "00000000000000000000000000010010",
                          "REGMODE_A": "NOREG", "REGMODE_B": "NOREG", "CLKAMUX": "CLKA",
                          "GSR": "DISABLED"},
           "port_directions": {"CLKA": "input", "OCEA": "input", "RSTA": "input",
                               **{f"DOA{k}": "output" for k in range(18)}},
           "connections": {"CLKA": [CLK], "OCEA": ["1"], "RSTA": ["0"],
                           **{f"DOA{k}": [100 + k] for k in range(18)}}}
    cells = {"ram": ram}
    for k in range(USED):
        cells[f"q{k}"] = {"type": "TRELLIS_FF",
                          "parameters": {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED",
                                         "LSRMUX": "LSR", "REGSET": "RESET"},
                          "port_directions": {"CLK": "input", "DI": "input", "LSR": "input",
                                              "Q": "output"},
                          "connections": {"CLK": [CLK], "DI": [100 + k], "LSR": ["0"],
                                          "Q": [20 + k]}}
    cells["use"] = {"type": "TRELLIS_COMB", "parameters": {},
                    "port_directions": {"A": "input", "B": "input", "C": "input", "F": "output"},
                    "connections": {"A": [20], "B": [21], "C": [22], "F": [30]}}
    return {"modules": {"top": {"cells": cells}}}


def test_the_register_after_a_read_moves_into_the_block():
    netlist = _netlist()
    assert absorb_output_registers(netlist) == {"ports": 1, "registers": USED}
    cells = netlist["modules"]["top"]["cells"]
    assert sorted(cells) == ["ram", "use"]
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG"
    assert ram["parameters"]["REGMODE_B"] == "NOREG"
    # the block's outputs now drive what the registers drove; the unused ones stay
    assert [ram["connections"][f"DOA{k}"] for k in range(5)] == [[20], [21], [22], [103], [104]]
    assert cells["use"]["connections"]["A"] == [20]
    assert absorb_output_registers(netlist) == {"ports": 0, "registers": 0}


def _ff(netlist, k=1):
    return netlist["modules"]["top"]["cells"][f"q{k}"]


def _ram(netlist):
    return netlist["modules"]["top"]["cells"]["ram"]


def _both_global_reset(n, regset="RESET"):
    _ram(n)["parameters"]["GSR"] = "ENABLED"
    for k in range(USED):
        _ff(n, k)["parameters"].update(GSR="ENABLED", REGSET=regset)


def test_registers_reset_with_the_block_ram_move_too():
    # (amaranth's board builds enable the global reset on both: it resets each to 0)
    netlist = _netlist()
    _both_global_reset(netlist)
    assert absorb_output_registers(netlist) == {"ports": 1, "registers": USED}


def _also_read_elsewhere(n):
    n["modules"]["top"]["cells"]["use"]["connections"]["B"] = [101]  # DOA1 itself


NOT_THAT_REGISTER = {
    "reset": lambda n: _ff(n)["connections"].update(LSR=[RESET]),
    "enable": lambda n: _ff(n)["parameters"].update(CEMUX="CE"),
    "other clock": lambda n: _ff(n)["connections"].update(CLK=[OTHER_CLK]),
    "falling edge": lambda n: _ff(n)["parameters"].update(CLKMUX="INV"),
    "global reset": lambda n: _ff(n)["parameters"].update(GSR="ENABLED"),
    "global reset to 1": lambda n: _both_global_reset(n, regset="SET"),
    "output read elsewhere": _also_read_elsewhere,
    "block output reset": lambda n: _ram(n)["connections"].update(RSTA=[RESET]),
    "block output enable": lambda n: _ram(n)["connections"].update(OCEA=[ENABLE]),
    "already registered": lambda n: _ram(n)["parameters"].update(REGMODE_A="OUTREG"),
    "pseudo dual port": lambda n: _ram(n)["parameters"].update(
        DATA_WIDTH_A="00000000000000000000000000100100"),
}


@pytest.mark.parametrize("case", sorted(NOT_THAT_REGISTER))
def test_any_other_register_stays_where_it_is(case):
    netlist = _netlist()
    NOT_THAT_REGISTER[case](netlist)
    before = copy.deepcopy(netlist)
    assert absorb_output_registers(netlist) == {"ports": 0, "registers": 0}
    assert netlist == before
