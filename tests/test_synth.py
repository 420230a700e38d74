"""The FPGA flow on the stand-in design: reports, fit, errors, board bitstreams."""
import json
from pathlib import Path

import pytest

from hwgen.boards import build_bitstream
from hwgen.synth import DesignFolderError, SynthError, get_target, synthesize
from hwgen.synth.cli_support import synth_command
from standin_design import write_standin


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("standin") / "standin")


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


def test_gowin_place_and_route(standin, tmp_path):
    _check_placed(synthesize(standin, "gowin", out_dir=tmp_path, progress=None), "gowin")


def test_xc7_is_an_estimate(standin, tmp_path):
    report = synthesize(standin, "xc7", out_dir=tmp_path, progress=None)
    assert report["estimate"] is True and report["fmax_mhz"] is None
    assert report["resources"]["LUT"]["used"] > 0 and report["fits"] is True
    assert "ESTIMATE" in (tmp_path / "report.txt").read_text()


def test_too_many_multipliers_do_not_fit(tmp_path):
    design = write_standin(tmp_path / "big", name="big", ballast=12)
    report = synthesize(design, "ice40-up5k", progress=None)
    assert report["fits"] is False and report["fmax_mhz"] is None
    assert report["overflow"][0]["resource"] == "DSP"
    assert report["overflow"][0]["used"] == 12 and report["overflow"][0]["available"] == 8
    assert report["bitstream"] is None
    assert json.loads((design / "synth/ice40-up5k/report.json").read_text())["fits"] is False


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


def test_cli_exit_codes(tmp_path, capsys):
    broken = write_standin(tmp_path / "broken", name="broken", broken=True)
    assert synth_command(broken, "ice40-up5k") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: yosys:") and "Traceback" not in err
    assert synth_command(broken, "nope") == 1
    assert "Unknown target 'nope'" in capsys.readouterr().err
    big = write_standin(tmp_path / "big", name="big", ballast=12)
    assert synth_command(big, "ice40-up5k") == 2
    assert "fits: NO, overflows DSP (12 > 8)" in capsys.readouterr().out


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
