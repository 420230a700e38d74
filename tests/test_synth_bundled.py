"""The FPGA flow on the bundled default design (digits_lstm, 2 MAC lanes) on the UP5K."""
import json
from pathlib import Path

import pytest

from hwgen import flow
from hwgen.quant import QuantConfig
from hwgen.synth import synthesize

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
