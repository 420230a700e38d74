"""The command line's contract: one line `hwgen: error: ...` and exit code 2 for every error,
1 for a check that ran and failed, 0 for success; bad input refused before any work."""
import json
import os
import shutil

import pytest

from hwgen.cli import EXIT_ERROR, EXIT_FAIL, EXIT_OK, main


def run(capsys, *argv):
    """Run `hwgen argv`; return (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(capsys, argv, message):
    """`hwgen argv` exits 2 with exactly one stderr line, `hwgen: error: <message>`."""
    code, out, err = run(capsys, *argv)
    assert (code, err) == (EXIT_ERROR, f"hwgen: error: {message}\n"), (code, err)
    assert "Traceback" not in out
    return out


def test_exit_codes_are_distinct():
    assert (EXIT_OK, EXIT_FAIL, EXIT_ERROR) == (0, 1, 2)


@pytest.mark.parametrize("argv,message", [
    (["generate", "--sequences", "0"],
     "argument --sequences: expected a positive integer, not '0'"),
    (["generate", "--sequences", "-5"],
     "argument --sequences: expected a positive integer, not '-5'"),
    (["generate", "--sequences", "many"],
     "argument --sequences: expected a positive integer, not 'many'"),
    (["generate", "--lanes", "0"], "argument --lanes: expected an integer in 1..128, not '0'"),
    (["generate", "--lanes", "129"], "argument --lanes: expected an integer in 1..128, not '129'"),
    (["generate", "--units", "3"], "argument --units: expected a power of two, not '3'"),
    (["generate", "--lanes", "4", "--units", "8"],
     "element-wise units must be a power of two dividing the 4 lanes, not 8"),
    (["demo", "--lanes", "0"], "argument --lanes: expected an integer in 1..128, not '0'"),
    (["generate", "--delta-budget", "-3"],
     "argument --delta-budget: expected a finite number >= 0, not '-3'"),
    (["generate", "--delta-budget", "nan"],
     "argument --delta-budget: expected a finite number >= 0, not 'nan'"),
    (["generate", "--delta-budget", "inf"],
     "argument --delta-budget: expected a finite number >= 0, not 'inf'"),
    (["delta", "--budget", "-3"], "argument --budget: expected a finite number >= 0, not '-3'"),
    (["generate", "--delta", "4,-1"],
     "argument --delta: expected 'theta_x,theta_h' integers >= 0, not '4,-1'"),
    (["generate", "--weights", "spram"],
     "argument --weights: invalid choice: 'spram' (choose from 'rom', 'load')"),
    (["generate", "--weight-bits", "0"],
     "argument --weight-bits: expected a positive integer, not '0'"),
    (["quantize", "--bits", "8", "-4"], "argument --bits: expected a positive integer, not '-4'"),
    (["synth", "d", "--freq", "-5"], "argument --freq: expected a finite number > 0, not '-5'"),
    (["synth", "d", "--freq", "0"], "argument --freq: expected a finite number > 0, not '0'"),
    (["synth", "d", "--freq", "nan"],
     "argument --freq: expected a finite number > 0, not 'nan'"),
    (["synth", "d", "--seeds", "0"],
     "argument --seeds: expected positive integers like 1,2,3; got '0'"),
    (["simulate", "d", "--max-sequences", "0"],
     "argument --max-sequences: expected a positive integer, not '0'"),
    (["simulate", "d", "--max-sequences", "-3"],
     "argument --max-sequences: expected a positive integer, not '-3'"),
    (["simulate", "d", "--stall-in", "1"],
     "argument --stall-in: expected a probability in [0, 1), not '1'"),
    (["nonsense"], "argument command: invalid choice: 'nonsense' (choose from 'list', "
                   "'quantize', 'generate', 'simulate', 'synth', 'build', 'delta', 'demo', "
                   "'explore', 'ternary')"),
    (["generate", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["simulate"], "the following arguments are required: design"),
])
def test_bad_arguments(capsys, argv, message):
    assert assert_error(capsys, argv, message) == ""


def test_unknown_synth_target(capsys):
    assert_error(capsys, ["synth", "d", "--target", "ice40-up5k,nope"],
                 "argument --target: Unknown target 'nope'; known targets: ecp5-25f, "
                 "ecp5-85f, gowin, ice40-hx8k, ice40-up5k, xc7, all")


@pytest.mark.parametrize("name", ["../../x", "..", ".", "a/b", "", "x y"])
def test_design_name_is_a_plain_name(capsys, tmp_path, name):
    out = tmp_path / "out"
    assert_error(capsys, ["generate", "--name", name, "--out", out],
                 "argument --name: a design name is a plain folder name of letters, digits, "
                 f"'_', '.' and '-', not {name!r}")
    assert list(tmp_path.iterdir()) == []


def test_generate_out_is_a_file(capsys, tmp_path):
    out = tmp_path / "a_file"
    out.write_text("keep")
    assert_error(capsys, ["generate", "--out", out], f"cannot write {out}: Not a directory")
    assert_error(capsys, ["generate", "--out", out / "sub"],
                 f"cannot write {out / 'sub'}: Not a directory")
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"] and out.read_text() == "keep"


def test_generate_into_a_read_only_folder(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):   # root: a mode does not stop writes, a file as parent does
            (tmp_path / "file").write_text("")
            ro, reason = tmp_path / "file", "Not a directory"
        else:
            reason = "Permission denied"
        assert_error(capsys, ["generate", "--out", ro], f"cannot write {ro}: {reason}")
        assert_error(capsys, ["demo", "--out", ro / "sub"],
                     f"cannot write {ro / 'sub'}: {reason}")
        assert {p.name for p in tmp_path.iterdir()} <= {"file", "ro"}
        assert list((tmp_path / "ro").iterdir()) == []
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_write_error_during_generation(capsys, tmp_path, monkeypatch):
    """An OSError while the design is written (here a full disk) is one line, naming the file;
    nothing is left behind."""
    from hwgen import flow

    def full_disk(task, qm, out, *args, **kwargs):
        raise OSError(28, "No space left on device", str(out / "weights.hex"))
    monkeypatch.setattr(flow, "generate_design", full_disk)
    out = tmp_path / "out"
    printed = assert_error(capsys, ["generate", "--out", out, "--name", "d"],
                           f"cannot write {out / 'd' / 'weights.hex'}: No space left on device")
    assert "[hwgen] generate" in printed and not out.exists()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`hwgen generate` of the default model with 3 test sequences: (its --out, exit code)."""
    out = tmp_path_factory.mktemp("gen") / "out"
    return out, main(["generate", "--out", str(out), "--name", "tiny.v1", "--sequences", "3"])


def test_generate_writes_only_inside_out(tiny):
    out, code = tiny
    assert code == EXIT_OK
    assert [p.name for p in out.parent.iterdir()] == ["out"]
    assert [p.name for p in out.iterdir()] == ["tiny.v1"]
    import numpy as np
    assert np.load(out / "tiny.v1" / "vectors.npz")["inputs"].shape[0] == 3


def _truncate_vectors(design):
    path = design / "vectors.npz"
    path.write_bytes(path.read_bytes()[:100])


def _null_verilog(design):
    path = design / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["interface"]["verilog"] = None
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("corrupt", [_truncate_vectors, _null_verilog])
def test_simulate_a_corrupt_design(capsys, tiny, tmp_path, corrupt):
    design = tmp_path / "tiny"
    shutil.copytree(tiny[0] / "tiny.v1", design)
    corrupt(design)
    code, out, err = run(capsys, "simulate", design)
    assert code == EXIT_ERROR and err.startswith("hwgen: error: ") and err.count("\n") == 1
    assert str(design) in err


def test_missing_design_folder(capsys, tmp_path):
    for command in ("simulate", "synth", "build"):
        code, out, err = run(capsys, command, tmp_path / "none")
        assert code == EXIT_ERROR and err.startswith("hwgen: error: ") and err.count("\n") == 1
        assert str(tmp_path / "none") in err
    assert list(tmp_path.iterdir()) == []


def test_unknown_board(capsys, tmp_path):
    from standin_design import write_standin
    design = write_standin(tmp_path / "d", name="d")
    assert_error(capsys, ["build", design, "--board", "nope"],
                 "Unknown board 'nope'; known boards: icebreaker, ulx3s")


def test_tool_failure_is_one_line_with_the_log_on_stdout(capsys, tmp_path):
    from standin_design import write_standin
    broken = write_standin(tmp_path / "broken", name="broken", broken=True)
    code, out, err = run(capsys, "synth", broken)
    assert code == EXIT_ERROR and err.count("\n") == 1
    assert err.startswith("hwgen: error: yosys: ") and "syntax error" in out


def test_tool_failures_on_several_targets(capsys, tmp_path):
    """Every target is tried, each failure printed under it; one error line names them."""
    from standin_design import write_standin
    broken = write_standin(tmp_path / "broken", name="broken", broken=True)
    out = assert_error(capsys, ["synth", broken, "--target", "ice40-up5k,ecp5-25f"],
                       "synth: failed for ice40-up5k, ecp5-25f (see above)")
    assert out.count("failed: yosys: ") == 2


def test_design_that_does_not_fit_is_a_failed_check(capsys, tmp_path):
    import json

    from hwgen.design_folder import seal
    from test_synth import write_big_ram
    big = write_big_ram(tmp_path / "bigram")
    manifest = json.loads((big / "manifest.json").read_text())
    manifest.setdefault("sizes", {"input_size": 1, "output_size": 1})
    manifest.setdefault("head_mode", "last")
    seal(big, manifest)
    code, out, err = run(capsys, "synth", big)
    assert (code, err) == (EXIT_FAIL, "")
    assert "fits: NO, overflows BRAM 32>30\n" in out


def test_flow_refuses_bad_sequence_counts():
    from hwgen import flow
    task = flow.load_task()
    for bad in (0, -5, len(task.x_test) + 1, 2.0):
        with pytest.raises(flow.FlowError, match="sequences must be an integer in 1.."):
            flow.design_vectors(task, None, bad)


def test_argparse_help_still_exits_0():
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
