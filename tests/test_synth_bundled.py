"""The FPGA flow on the bundled default design (digits_lstm, 2 MAC lanes) on the UP5K."""
import json
from pathlib import Path

import pytest

from hwgen import flow
from hwgen.boards import build_bitstream
from hwgen.quant import QuantConfig
from hwgen.synth import synthesize
from hwgen.synth.block_ram_registers import absorb_output_registers

RTL_OUT = Path(__file__).resolve().parent.parent / "rtl_out"

EBR_BITS = 4096  # one iCE40 SB_RAM40_4K


@pytest.mark.slow
def test_bundled_design_places_on_up5k(tmp_path):
    task = flow.load_task(flow.DEFAULT_MODEL)
    qm = flow.quantize(task, QuantConfig(weight_bits=8, act_bits=8))
    design = flow.generate_design(task, qm, tmp_path / "design", lanes=flow.DEFAULT_LANES,
                                  sequences=4)
    report = synthesize(design, "ice40-up5k", out_dir=tmp_path / "synth", progress=None)
    res = report["resources"]
    assert report["fits"] is True and report["overflow"] == []
    # Weight memory in EBR, MAC lanes on SB_MAC16 (the lanes plus the PWL and element-wise
    # multipliers want more than the 8 DSPs: the widest go to DSPs, the rest to logic).
    assert res["BRAM"]["placed"] == res["BRAM"]["used"]
    weights = json.loads((design / "manifest.json").read_text())["memories"]["weights"]
    assert res["BRAM"]["used"] * EBR_BITS >= weights["depth"] * weights["word_width"]
    assert res["DSP"]["used"] > 0 and res["DSP"]["placed"] <= res["DSP"]["available"]
    assert report["dsp_mapping"]["strategy"] in ("dsp", "dsp-widest")
    assert report["fmax_mhz"] > 0 and report["critical_path"]["delay_ns"] > 0
    assert report["performance"]["latency_per_step_us"] > 0
    assert Path(report["bitstream"]).stat().st_size > 0


@pytest.mark.slow
def test_bundled_design_icebreaker_bitstream_keeps_the_dsps(tmp_path):
    # the core wants 10 SB_MAC16s, the UP5K has 8: the board build splits like hwgen synth
    events = []
    result = build_bitstream(RTL_OUT / "digits_lstm_p2", "icebreaker", tmp_path,
                             progress=lambda *e: events.append(e[:2]))
    assert Path(result["bitstream"]).stat().st_size > 0
    assert result["utilization"]["ICESTORM_DSP"]["used"] == 8
    assert result["dsp_note"].endswith("the 8 widest of 10 on DSPs, 2 in logic")
    assert ("build", "retry with the widest multipliers on DSPs") in events
    assert ("build", "retry without DSPs") not in events
    assert all(f["achieved"] >= f["constraint"] for f in result["fmax"].values())
    assert (tmp_path / "soft_muls.txt").read_text().count("\n") == 2


@pytest.mark.slow
def test_bundled_design_ulx3s_bitstream_has_the_block_ram_registers(tmp_path):
    # as hwgen synth: each weight bank's register moved into its block RAMs (REGMODE OUTREG)
    result = build_bitstream(RTL_OUT / "digits_lstm_p2", "ulx3s", tmp_path)
    assert Path(result["bitstream"]).stat().st_size > 0
    assert all(f["achieved"] >= f["constraint"] for f in result["fmax"].values())
    moved = result["block_ram_registers"]
    netlist = json.loads((tmp_path / "hwgen_board.json").read_text())
    rams = [c for m in netlist["modules"].values() for c in m.get("cells", {}).values()
            if c["type"] == "DP16KD"]
    outreg = sum(c["parameters"][f"REGMODE_{s}"] == "OUTREG" for c in rams for s in "AB")
    assert moved["ports"] == outreg > 0 and moved["registers"] >= outreg


@pytest.mark.slow
def test_default_model_at_4_bits_and_4_lanes_places_on_ecp5(tmp_path):
    """16-bit weight words (4 bits x 4 lanes) in DP16KD banks. A datapath split once made
    Yosys drive one ROM data bit from two DP16KD outputs, which nextpnr refused (found by
    `hwgen explore`): the whole flow must pass here."""
    task = flow.load_task(flow.DEFAULT_MODEL)
    qm = flow.quantize(task, QuantConfig(weight_bits=4, act_bits=8))
    design = flow.generate_design(task, qm, tmp_path / "design", lanes=4, sequences=4)
    report = synthesize(design, "ecp5-85f", out_dir=tmp_path / "synth", progress=None,
                        pack=False)
    assert report["fits"] is True and report["overflow"] == []
    assert report["fmax_mhz"] > 0 and report["resources"]["BRAM"]["placed"] > 0
    # each weight bank's register went into its block RAMs (REGMODE OUTREG), as placed
    moved = report["block_ram_registers"]
    netlist = json.loads((tmp_path / "synth" / "netlist.json").read_text())
    rams = [c for m in netlist["modules"].values() for c in m.get("cells", {}).values()
            if c["type"] == "DP16KD"]
    outreg = sum(c["parameters"][f"REGMODE_{s}"] == "OUTREG" for c in rams for s in "AB")
    assert moved["ports"] == outreg > 0 and moved["registers"] >= outreg
    assert absorb_output_registers(netlist) == {"ports": 0, "registers": 0}
    assert "block RAM output registers" in (tmp_path / "synth" / "report.txt").read_text()
