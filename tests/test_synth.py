"""The FPGA flow on the stand-in design: reports, fit, errors, board bitstreams."""
import dataclasses
import json
import os
from pathlib import Path
import re

from amaranth.back import verilog
from amaranth.hdl import signed
from amaranth.lib import data
import pytest

from hwgen.boards import build_bitstream
from hwgen.boards.build import _out_of_dsps
from hwgen.design_folder import build_dir, load_manifest, seal
from hwgen.rtl.rom import BankedROM
from hwgen.synth import DesignFolderError, SynthError, get_target, synthesize
from hwgen.synth.cli_support import synth_command
from hwgen.synth.design import Design
from hwgen.synth.flow import _device_source, _run_yosys
from hwgen.synth.reports import performance
from standin_design import write_standin

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("standin") / "standin")


# 2048 x 64 bits of RAM: 32 iCE40 EBRs of 4 kbit, the UP5K has 30; and MULS multipliers.
_BIG_RAM_VERILOG = """
module hwgen_bigram(input clk, input rst, input [9:0] i__payload, input i__valid,
                    output i__ready, output reg [12:0] o__payload, output reg o__valid,
                    input o__ready);
  parameter MULS = 0;
  reg [63:0] mem [0:2047];
  reg [10:0] wa, ra;
  reg [63:0] shift, q;
  reg [31:0] mix;
  integer k;
  assign i__ready = 1'b1;
  always @(posedge clk) begin
    if (i__valid) begin
      shift <= {shift[55:0], i__payload[7:0]};
      mem[wa] <= shift;
      wa <= wa + 11'd1;
    end
    ra <= ra + 11'd3;
    q <= mem[ra];
    mix = 32'd0;
    for (k = 0; k < MULS; k = k + 1)
      mix = mix ^ (shift[15:0] * (q[15:0] + k));
    o__payload <= q[12:0] ^ q[25:13] ^ q[38:26] ^ q[51:39] ^ {q[63:52], ^mix};
    o__valid <= ~rst;
  end
endmodule
"""


def _up5k_report(design, name: str) -> Path:
    """A file of the default UP5K synthesis folder of `design`."""
    return build_dir(design, "synth", "ice40-up5k") / name


def write_big_ram(out_dir, muls: int = 0) -> Path:
    """A design folder whose RAM needs more block RAM than the UP5K has."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / "hwgen_bigram.v").write_text(
        _BIG_RAM_VERILOG.replace("MULS = 0", f"MULS = {muls}"))
    manifest = {"name": "bigram", "interface": {
        "top": "hwgen_bigram", "verilog": ["hwgen_bigram.v"], "clock": "clk", "reset": "rst",
        "in_width": 8, "out_width": 12}, "sizes": {"input_size": 1, "output_size": 1},
        "head_mode": "every", "cycles": {"per_step": 1, "per_sequence_overhead": 0}}
    seal(out_dir, manifest)
    return out_dir


def _check_placed(report, target):
    res = report["resources"]
    assert report["target"] == target and report["fits"] is True and report["overflow"] == []
    assert res["LUT"]["used"] > 0 and res["FF"]["used"] > 0
    assert res["LUT"]["placed"] > 0 and res["LUT"]["available"] > res["LUT"]["used"]
    assert report["fmax_mhz"] > 0 and report["critical_path"]["delay_ns"] > 0
    assert report["performance"]["latency_per_step_us"] > 0
    assert Path(report["bitstream"]).stat().st_size > 0
    out = Path(report["out_dir"])
    assert json.loads((out / "report.json").read_text())["fits"] is True
    assert "Fmax" in (out / "report.txt").read_text()


@pytest.mark.parametrize("target,freq", [("ice40-up5k", 48), ("ecp5-85f", 125)])
def test_place_and_route(standin, target, freq):
    events = []
    report = synthesize(standin, target, progress=lambda *e: events.append(e))
    _check_placed(report, target)
    assert report["freq_constraint_mhz"] == freq
    assert [(s, e) for s, e, _ in events] == [
        ("yosys", "start"), ("yosys", "done"), ("nextpnr", "start"), ("nextpnr", "done"),
        ("pack", "start"), ("pack", "done")]
    assert report["performance"]["per_step"] == 4  # input_size 3 + 1 output cycle
    if target == "ice40-up5k":
        assert report["dsp_mapping"]["strategy"] == "dsp"
        assert "DSP mapping" not in Path(report["out_dir"], "report.txt").read_text()
    else:
        assert report["dsp_mapping"] is None


def test_seed_sweep_keeps_the_fastest_placement(standin, tmp_path):
    events = []
    report = synthesize(standin, "ecp5-85f", out_dir=tmp_path, seeds=(1, 2, 3),
                        progress=lambda *e: events.append(e), router="router2")
    _check_placed(report, "ecp5-85f")
    assert report["router"] == "router2" and "Running router2" in (
        tmp_path / "nextpnr.log").read_text()
    assert "router: router2" in (tmp_path / "report.txt").read_text()
    assert (tmp_path / "clock.lpf").read_text() == 'LOCATE COMP "clk" SITE "G2";\n'
    with pytest.raises(ValueError, match="router must be one of router1, router2, not 'r3'"):
        synthesize(standin, "ecp5-85f", out_dir=tmp_path / "r3", router="r3")
    by_seed = report["fmax_by_seed"]
    assert sorted(by_seed) == ["1", "2", "3"]
    assert report["fmax_mhz"] == max(by_seed.values()) == by_seed[str(report["seed"])]
    assert [s for s, e, _ in events if e == "done"][:3] == [
        "yosys", "nextpnr-seed1", "nextpnr-seed2"]
    # the kept seed's files carry the plain names, the others are gone
    assert json.loads((tmp_path / "report_pnr.json").read_text())
    assert not list(tmp_path.glob("*.seed*"))
    assert f"kept seed {report['seed']}" in (tmp_path / "report.txt").read_text()


def test_static_placer_is_asked_for_and_reported(standin, tmp_path):
    report = synthesize(standin, "ecp5-85f", out_dir=tmp_path, progress=None,
                        router="router2", placer="static")
    _check_placed(report, "ecp5-85f")
    assert report["placer"] == "static" and report["router"] == "router2"
    log = (tmp_path / "nextpnr.log").read_text()
    assert "Running Static placer" in log and "Running router2" in log
    assert "placer: static" in (tmp_path / "report.txt").read_text()
    with pytest.raises(ValueError, match="placer must be one of heap, static, not 'sa2'"):
        synthesize(standin, "ecp5-85f", out_dir=tmp_path / "sa2", placer="sa2")


def test_gowin_place_and_route(standin, tmp_path):
    _check_placed(synthesize(standin, "gowin", out_dir=tmp_path, progress=None), "gowin")


def test_xc7_is_an_estimate(standin, tmp_path):
    report = synthesize(standin, "xc7", out_dir=tmp_path, progress=None)
    assert report["estimate"] is True and report["fmax_mhz"] is None
    assert report["resources"]["LUT"]["used"] > 0 and report["fits"] is True
    assert "ESTIMATE" in (tmp_path / "report.txt").read_text()


def test_too_many_multipliers_fit_with_the_widest_on_dsps(tmp_path):
    design = write_standin(tmp_path / "big", name="big", ballast=12)
    report = synthesize(design, "ice40-up5k", progress=None)
    dsp = report["dsp_mapping"]
    assert report["fits"] is True and report["overflow"] == [] and report["fmax_mhz"] > 0
    assert dsp["strategy"] == "dsp-widest" and dsp["dsp_wanted"] == 12
    assert len(dsp["on_dsp"]) == 8 and len(dsp["in_logic"]) == 4
    assert dsp["attempts"] == [{"strategy": "dsp", "dsp": 12}, {"strategy": "dsp-widest", "dsp": 8}]
    assert report["resources"]["DSP"]["used"] == 8 and report["resources"]["DSP"]["placed"] == 8
    assert Path(report["bitstream"]).stat().st_size > 0
    assert list(report["stage_seconds"]) == ["yosys", "yosys-dsp-probe", "yosys-dsp-widest",
                                             "nextpnr", "pack"]
    text = _up5k_report(design, "report.txt").read_text()
    assert "DSP mapping: dsp-widest (synth_ice40 -dsp wanted 12 SB_MAC16 > 8: the 8 widest " \
           "of 12 multipliers on SB_MAC16, 4 in logic)" in text
    saved = json.loads(_up5k_report(design, "report.json").read_text())
    assert saved["dsp_mapping"]["strategy"] == "dsp-widest"


def test_no_dsp_budget_puts_every_multiplier_in_logic(tmp_path):
    design = write_standin(tmp_path / "two", name="two", ballast=2)
    up5k = get_target("ice40-up5k")
    no_dsps = dataclasses.replace(up5k, capacity={**up5k.capacity, "DSP": 0})
    report = synthesize(design, no_dsps, progress=None, pack=False)
    dsp = report["dsp_mapping"]
    assert dsp["strategy"] == "no-dsp" and dsp["on_dsp"] == [] and len(dsp["in_logic"]) == 2
    assert dsp["attempts"] == [{"strategy": "dsp", "dsp": 2}, {"strategy": "no-dsp", "dsp": 0}]
    assert report["cells"].get("SB_MAC16", 0) == 0 and report["fits"] is True
    assert "synthesized without -dsp" in _up5k_report(design, "report.txt").read_text()


def test_too_much_block_ram_does_not_fit(tmp_path):
    design = write_big_ram(tmp_path / "bigram")
    report = synthesize(design, "ice40-up5k", progress=None)
    assert report["fits"] is False and report["fmax_mhz"] is None
    assert report["overflow"][0]["resource"] == "BRAM"
    assert report["overflow"][0]["used"] == 32 and report["overflow"][0]["available"] == 30
    assert report["bitstream"] is None
    assert json.loads(_up5k_report(design, "report.json").read_text())["fits"] is False


def test_no_dsp_fallback_when_block_ram_overflows_too(tmp_path):
    design = write_big_ram(tmp_path / "bigram", muls=12)
    report = synthesize(design, "ice40-up5k", progress=None)
    assert report["fits"] is False
    assert {o["resource"]: o["used"] for o in report["overflow"]} == {"DSP": 12, "BRAM": 32}
    dsp = report["dsp_mapping"]
    assert dsp["strategy"] == "dsp" and dsp["attempts"] == [{"strategy": "dsp", "dsp": 12}]
    assert "no fallback tried, as BRAM (32 > 30) overflows anyway" in dsp["detail"]
    assert "DSP mapping: dsp (" in _up5k_report(design, "report.txt").read_text()


def test_wide_core_gets_the_pin_shell(tmp_path):
    design = write_standin(tmp_path / "wide", name="wide", in_width=16, out_width=16)
    report = synthesize(design, "ice40-up5k", out_dir=tmp_path / "out", progress=None)
    assert report["pin_shell"] == {"used": True, "extra_ffs": 35}
    assert report["fits"] is True and report["fmax_mhz"] > 0


def test_broken_verilog_raises_synth_error(tmp_path):
    design = write_standin(tmp_path / "broken", name="broken", broken=True)
    with pytest.raises(SynthError) as info:
        synthesize(design, "ice40-up5k", progress=None)
    assert info.value.stage == "yosys"
    assert "ERROR" in info.value.log_tail and "syntax error" in info.value.log_tail


def test_cli_support_raises_and_reports_fit(tmp_path, capsys):
    broken = write_standin(tmp_path / "broken", name="broken", broken=True)
    with pytest.raises(SynthError, match="^yosys:"):
        synth_command(broken, "ice40-up5k")
    with pytest.raises(ValueError, match="Unknown target 'nope'"):
        synth_command(broken, "nope")
    big = write_big_ram(tmp_path / "bigram")
    assert synth_command(big, "ice40-up5k") is False
    assert "fits: NO, overflows BRAM 32>30\n" in capsys.readouterr().out


def test_bad_design_folders(tmp_path):
    with pytest.raises(DesignFolderError, match="is not a design folder: no manifest.json"):
        synthesize(tmp_path, "ice40-up5k", progress=None)
    with pytest.raises(ValueError, match="Unknown target 'ice41'; known targets: ecp5-25f"):
        get_target("ice41")


@pytest.mark.parametrize("board,suffix", [("icebreaker", ".bin"), ("ulx3s", ".bit")])
def test_board_bitstream(standin, tmp_path, board, suffix):
    result = build_bitstream(standin, board, tmp_path)
    path = Path(result["bitstream"])
    assert path.suffix == suffix and path.stat().st_size > 0
    assert all(f["achieved"] >= f["constraint"] for f in result["fmax"].values())
    saved = json.loads((tmp_path / "board.json").read_text())
    assert saved["divisor"] == {"icebreaker": 104, "ulx3s": 217}[board]
    assert saved["dsp_note"] is None  # the stand-in's multipliers fit the DSPs
    # the ECP5 build moves block RAM read registers (the stand-in has none to move)
    assert saved["block_ram_registers"] == (
        {"ports": 0, "registers": 0} if board == "ulx3s" else None)


def test_board_build_detects_dsp_overflow(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("ERROR: Unable to place cell 'x_SB_MAC16_O_DSP', no BELs remaining to "
                   "implement cell type 'ICESTORM_DSP'\n")
    assert _out_of_dsps(log)
    log.write_text("ERROR: Unable to place cell 'y', no BELs remaining to implement cell type "
                   "'ICESTORM_LC'\n")
    assert not _out_of_dsps(log)
    assert not _out_of_dsps(tmp_path / "missing.log")


def test_placement_overflow_reports_nextpnrs_demand():
    from hwgen.synth.flow import _overflow
    from hwgen.synth.reports import bel_demand, overflowed_bel
    from hwgen.synth.table import overflow_text
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:    5612/   5280   106%\n"
           "Info: \t        ICESTORM_RAM:      26/     30    86%\n"
           "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type "
           "'ICESTORM_LC'\n")
    bel = overflowed_bel(log)
    assert bel == "ICESTORM_LC" and bel_demand(log, bel) == 5612
    assert bel_demand(log, "ICESTORM_DSP") is None
    up5k = get_target("ice40-up5k")
    resources = {res: {"used": 3485 if res == "LUT" else 0, "available": cap}
                 for res, cap in up5k.capacity.items()}
    (over,) = _overflow(up5k, resources, (bel, 5612))
    assert over == {"resource": "LUT", "used": 5612, "available": 5280, "source": "nextpnr",
                    "bel": "ICESTORM_LC"}
    assert overflow_text(over) == "LUT 5612>5280 (placed)"
    # the analytic placer says it otherwise (GRU I=16 H=64, 8-bit, 6 lanes)
    log = ("Info: \t         ICESTORM_LC:    5323/   5280   100%\n"
           "ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5323 ICESTORM_LCs\n")
    assert overflowed_bel(log) == "ICESTORM_LC" and bel_demand(log, "ICESTORM_LC") == 5323


def test_board_build_leaves_the_process_environment_alone(standin, tmp_path):
    # YOSYS in this process would switch amaranth's Verilog backend to another Yosys, and
    # designs generated afterwards would differ from the committed ones.
    before = dict(os.environ)
    build_bitstream(standin, "ulx3s", tmp_path)
    assert dict(os.environ) == before


def _rom_design(tmp_path) -> Design:
    """A 2-lane banked weight ROM: Amaranth names its lanes ``\\data[0]``, ``\\data[1]``."""
    rom = BankedROM(data.ArrayLayout(signed(8), 2), [[k % 127, -k % 128] for k in range(1024)])
    (tmp_path / "rom.v").write_text(verilog.convert(rom, name="rom"))
    return Design(tmp_path, {}, "rom", "rom", (tmp_path / "rom.v",), 10, 16)


def test_bracketed_wire_names_survive_technology_mapping(tmp_path):
    # Yosys 0.70 failed an assertion in ABC's reintegration on these names (no message)
    design = _rom_design(tmp_path)
    assert "\\data[1] " in (tmp_path / "rom.v").read_text()
    counts = _run_yosys(design, get_target("ecp5-85f"), "rom", [tmp_path / "rom.v"], tmp_path)
    assert counts["DP16KD"] == 1 and (tmp_path / "netlist.json").stat().st_size > 0


def test_yosys_errors_after_technology_mapping_reach_the_log(tmp_path):
    design = _rom_design(tmp_path)
    body = ["synth_ecp5 -top rom", "select -assert-none t:DP16KD"]
    with pytest.raises(SynthError) as info:
        _run_yosys(design, get_target("ecp5-85f"), "rom", [tmp_path / "rom.v"], tmp_path, body)
    assert "Assertion failed: selection is not empty" in info.value.log_tail
    assert "Assertion failed" in (tmp_path / "yosys.log").read_text()


def test_loaded_weights_go_to_spram_on_the_up5k_only(tmp_path):
    """weights="load": the weight memory maps to SB_SPRAM256KA on the UP5K (block RAM on
    the ECP5), and the pin shell drives the weight stream from pins."""
    import numpy as np
    from conftest import make_model
    from hwgen.frontend import from_torch
    from hwgen.quant import quantize_model
    from hwgen.rtl.emit import generate
    from hwgen.synth.design import load_design
    from hwgen.synth.flow import _device_source, _run_yosys
    from hwgen.synth.pins import SHELL_TOP, pin_shell_verilog
    ir = from_torch(make_model("gru", 5, 13, 3))
    qm = quantize_model(ir, np.random.default_rng(0).uniform(-1, 1, (8, 4, 5)))
    design = load_design(generate(qm, tmp_path / "loaded", lanes=3, weights="load"))
    assert design.weight_beat_bits == 8 and design.port_bits() == 2 + 12 + 11 + 10
    for target, spram in (("ice40-up5k", 2), ("ecp5-25f", 0)):   # 3 x 8 bits: 2 x 16 wide
        out = tmp_path / target
        out.mkdir()
        counts = _run_yosys(design, get_target(target), design.top, list(design.verilog), out)
        assert counts.get("SB_SPRAM256KA", 0) == spram, counts
        assert get_target(target).resources_of(counts)[0].get("SPRAM", 0) == spram  # reported
        mapped = "ICE40_SPRAM_" if spram else "16KD_"   # ECP5: DP16KD or PDPW16KD
        assert re.search(rf"mac\.w_ram\.ram via \$__\w*{mapped}\n",
                         (out / "yosys.log").read_text())
    shell = tmp_path / "shell"
    shell.mkdir()
    (shell / "pin_shell.v").write_text(pin_shell_verilog(design))
    _run_yosys(design, get_target("ice40-up5k"), SHELL_TOP,
               [*design.verilog, shell / "pin_shell.v"], shell, body=[])   # hierarchy -check


def test_loaded_ternary_entries_go_to_spram_on_the_up5k(tmp_path):
    """A ternary model's entries with weights="load": the entry memory maps to
    SB_SPRAM256KA on the UP5K (16 bits wide each), the pointers and digits (the schedule
    ROM) stay in block RAM."""
    import numpy as np
    from conftest import make_model
    from hwgen.frontend import from_torch
    from hwgen.rtl.emit import generate
    from hwgen.synth.design import load_design
    from hwgen.synth.flow import _run_yosys
    from hwgen.ternary import ternarize
    ir = from_torch(make_model("gru", 5, 13, 3))
    qm = ternarize(ir, np.random.default_rng(0).uniform(-1, 1, (8, 4, 5)), 2).qm
    design = load_design(generate(qm, tmp_path / "loaded", lanes=3, weights="load"))
    counts = _run_yosys(design, get_target("ice40-up5k"), design.top, list(design.verilog),
                        tmp_path)
    width = design.manifest["memories"]["entries"]["word_width"]
    assert counts.get("SB_SPRAM256KA", 0) == -(-width // 16) > 0, counts
    log = (tmp_path / "yosys.log").read_text()
    assert re.search(r"level_sums\.e_rom\.ram via \$__\w*ICE40_SPRAM_\n", log)
    assert not re.search(r"schedule\.rom\S* via \$__\w*SPRAM", log)


def test_wide_shallow_memories_leave_block_ram_only_when_it_overflows(tmp_path):
    """At 16 lanes the accumulators (25 words, two read ports) and biases (13 words) are
    16 x 20 bits wide (biases in two slices of 8 lanes, accumulators in eight slices of 2
    lanes: `ACC_SLICE_LANES`): the biases kept in block RAM while it
    fits (Yosys puts accumulators this shallow in LUT RAM by itself), in logic on an ECP5
    whose block RAM they overflow (a second Yosys run), and the accumulators in LUT RAM."""
    import numpy as np
    from conftest import make_model
    from hwgen.design_folder import SHALLOW_ATTR
    from hwgen.frontend import from_torch
    from hwgen.quant import quantize_model
    from hwgen.rtl.emit import generate
    from hwgen.rtl.mac_array import ACC_SLICE_LANES
    ir = from_torch(make_model("gru", 5, 40, 3))
    qm = quantize_model(ir, np.random.default_rng(0).uniform(-1, 1, (8, 4, 5)))
    (ql,) = qm.layers
    design = generate(qm, tmp_path / "wide", lanes=16)
    verilog_text = "".join(p.read_text() for p in design.glob("*.v"))
    assert verilog_text.count(f'{SHALLOW_ATTR} = "ram"') == 16 // ACC_SLICE_LANES
    assert verilog_text.count(f'{SHALLOW_ATTR} = "rom"') == 2   # the biases'
    mapped = r"mac\.{}[01] via \$__(\w+)_\n"
    ecp5 = dataclasses.replace(get_target("ecp5-25f"), pnr=None, pack=None)
    roomy = synthesize(design, ecp5, out_dir=tmp_path / "roomy", progress=None)
    memory = roomy["memory_mapping"]
    assert memory["strategy"] == "block" and len(memory["attempts"]) == 1
    blocks = memory["attempts"][0]["bram"]
    log = (tmp_path / "roomy" / "yosys.log").read_text()
    assert set(re.findall(mapped.format("b_mem"), log)) == {"PDPW16KD"}
    assert not (tmp_path / "roomy" / "shallow_in_lut.log").exists()
    # the 16 lanes' multipliers and each of the E element-wise units' five (the PWL units'
    # of sigmoid r, z and tanh n, and the gate products r * n_h and z * (h - n)) with the
    # MULT18X18D's own registers (`registered_product`)
    from hwgen.registered_product import ECP5_REGISTERS
    units = json.loads((design / "manifest.json").read_text())["units"]
    assert units == 2 and {ql.sigmoid.slope_form, ql.tanh.slope_form} == {"mult"}
    netlist = json.loads((tmp_path / "roomy" / "netlist.json").read_text())
    cells = next(m for m in netlist["modules"].values() if m["attributes"].get("top"))["cells"]
    registered = [ECP5_REGISTERS.items() <= c["parameters"].items()
                  for c in cells.values() if c["type"] == "MULT18X18D"]
    assert registered == [True] * (16 + 5 * units)

    tight = dataclasses.replace(ecp5, capacity={**ecp5.capacity, "BRAM": blocks - 1})
    events = []
    report = synthesize(design, tight, out_dir=tmp_path / "tight",
                        progress=lambda *e: events.append(e))
    memory = report["memory_mapping"]
    assert [s for s, e, _ in events if e == "done"] == ["yosys", "yosys-shallow-in-lut"]
    assert memory["strategy"] == "shallow-in-lut" and memory["attempts"][0]["bram"] == blocks
    assert report["resources"]["BRAM"]["used"] == memory["attempts"][1]["bram"] < blocks
    assert report["fits"] is True
    log = (tmp_path / "tight" / "shallow_in_lut.log").read_text()
    assert set(re.findall(mapped.format("acc_mem"), log)) == {"TRELLIS_DPR16X4"}
    assert not re.search(mapped.format("b_mem"), log)   # logic
    assert "memory mapping: shallow-in-lut" in (tmp_path / "tight" / "report.txt").read_text()


def test_marked_register_copies_stay_apart(tmp_path):
    """Identical registers marked `COPY_ATTR` (a control signal copied per group of its
    consumers) keep their copies through synthesis; unmarked, Yosys merges them into one."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from hwgen.design_folder import COPY_ATTR

    class Fanout(wiring.Component):
        en: In(1)
        d: In(32)
        q: Out(32)

        def __init__(self, attrs):
            self.attrs = attrs
            super().__init__()

        def elaborate(self, platform):
            m = Module()
            for g in range(4):   # four copies of `en`, each enabling a quarter of q
                copy = Signal(name=f"en_c{g}", attrs=self.attrs)
                m.d.sync += copy.eq(self.en)
                with m.If(copy):
                    m.d.sync += self.q[8 * g:8 * g + 8].eq(self.d[8 * g:8 * g + 8])
            return m

    ffs = {}
    for marked in (True, False):
        out = tmp_path / str(marked)
        out.mkdir()
        (out / "fanout.v").write_text(verilog.convert(
            Fanout({COPY_ATTR: 1} if marked else {}), name="fanout"))
        design = Design(out, {}, "fanout", "fanout", (out / "fanout.v",), 33, 32)
        counts = _run_yosys(design, get_target("ecp5-85f"), "fanout", [out / "fanout.v"], out)
        ffs[marked] = counts["TRELLIS_FF"]
        assert (f"a:{COPY_ATTR}" in (out / "synth.ys").read_text()) == marked
    assert ffs == {True: 32 + 4, False: 32 + 1}


_PRODUCTS_TOP = """module products(input clk, input signed [7:0] a, input signed [8:0] b,
                input signed [19:0] c, output signed [16:0] p, output signed [28:0] q);
  hwgen_registered_product #(.A_WIDTH(8), .B_WIDTH(9)) narrow (.clk(clk), .a(a), .b(b), .p(p));
  hwgen_registered_product #(.A_WIDTH(20), .B_WIDTH(9)) wide (.clk(clk), .a(c), .b(b), .p(q));
endmodule
"""


@pytest.mark.parametrize("target", ["ecp5-25f", "ice40-up5k"])
def test_registered_products_use_the_device_multipliers_registers(tmp_path, target):
    """The ECP5 synthesizes the registered product module as a MULT18X18D with its input
    and output registers on (operands of at most 18 bits; wider ones in the fabric's
    registers, as the behavioural form): no fabric flip-flop for the narrow product. Other
    targets read the design's behavioural file (the iCE40's Yosys packs its registers)."""
    from hwgen import registered_product
    (tmp_path / "products.v").write_text(_PRODUCTS_TOP)
    (tmp_path / registered_product.FILE).write_text(registered_product.verilog())
    design = Design(tmp_path, {}, "products", "products",
                    (tmp_path / "products.v", tmp_path / registered_product.FILE), 8 + 9 + 20,
                    17 + 29)
    tgt = get_target(target)
    out = tmp_path / "out"
    out.mkdir()
    sources = [_device_source(src, tgt, out) for src in design.verilog]
    counts = _run_yosys(design, tgt, "products", sources, out)
    cells = json.loads((out / "netlist.json").read_text())["modules"]["products"]["cells"]
    if target.startswith("ecp5"):
        assert sources[1] == out / registered_product.FILE
        mults = {name: c["parameters"] for name, c in cells.items() if c["type"] == "MULT18X18D"}
        narrow = [p for name, p in mults.items() if name.startswith("narrow.")]
        assert narrow == [registered_product.ECP5_REGISTERS]
        assert all("REG_INPUTA_CLK" not in p for name, p in mults.items()
                   if name.startswith("wide."))
        # the wide product's operand and product registers only
        assert sum(c["type"] == "TRELLIS_FF" for c in cells.values()) == 20 + 9 + 29
    else:
        assert sources == list(design.verilog)
        assert counts.get("SB_MAC16", 0) >= 1


def test_performance_counts_a_head_that_runs_on_every_step():
    # the char LM's head runs on every step: a step lasts its layers' cycles and the head's
    manifest = load_manifest(ROOT / "rtl_out" / "charlm_gru2_p8")
    cycles = manifest["cycles"]
    assert manifest["head_mode"] == "every" and cycles["per_sequence_overhead"] == 0
    perf = performance(manifest, 100.0, 10)
    assert perf["per_step"] == cycles["per_step"] + cycles["head"] == cycles["model_per_step"]
    assert perf["latency_per_step_us"] == (cycles["per_step"] + cycles["head"]) / 100.0
    # a head on the last step only: once per sequence
    last = load_manifest(ROOT / "rtl_out" / "digits_lstm_p2")
    perf = performance(last, 100.0, 10)
    assert perf["per_step"] == last["cycles"]["per_step"]
    assert perf["cycles_per_sequence"] == (10 * last["cycles"]["per_step"]
                                           + last["cycles"]["per_sequence_overhead"])
    # a manifest with no overhead: its head is added to the contract's per_step, once
    bare = {"head_mode": "every", "cycles": {"per_step": 100, "head": 20, "model_per_step": 120}}
    assert performance(bare, 100.0, 10)["per_step"] == 120
