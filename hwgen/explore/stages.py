"""The stages of a sweep, each a Dask task: quantize, generate, synthesize, simulate.

A stage function computes one result dict from its inputs; :func:`run_stage` wraps it with
the cache and turns any exception into a failed result (``ok`` False, ``stage``, ``error``)
so that a failing point never stops a sweep. Stages downstream of a failure pass it on.
Tests replace stage functions through the ``stages`` argument of `hwgen.explore.explore`.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
import signal
import subprocess
import sys

from ..design_folder import step_cycles
from .cache import Cache

#: Seconds a synthesis (all seeds) may take before it is killed and recorded as a timeout.
SYNTH_TIMEOUT = 3600.0
#: Test sequences stored with each design (its testbench vectors); the simulation runs 20.
DESIGN_SEQUENCES = 100


class ChildError(RuntimeError):
    """An error of the synthesis child process, its message already ``Type: text``."""


@functools.lru_cache(maxsize=4)
def _load(name: str):
    from ..flow import load_task
    return load_task(name)


def resolve_task(task):
    """A `hwgen.flow.Task` from a task or a model name (loaded once per worker process)."""
    return _load(task) if isinstance(task, str) else task


def quant_config(qconfig: dict):
    from ..quant import QuantConfig
    return QuantConfig(**qconfig)


def quant_stage(task, qconfig: dict, delta_budget: float | None) -> dict:
    """Quantize, score on the test set, and choose delta thresholds within the budget.

    ``delta_budget`` None is a dense design (no thresholds)."""
    from .. import flow
    task = resolve_task(task)
    qm = flow.quantize(task, quant_config(qconfig))
    out = {"weight_memory_bits": int(qm.memory_bits()["weight_bits"]), "thresholds": None,
           "macs_eliminated": 0.0}
    if delta_budget is None:
        out["metric"] = task.metric(qm.decode_outputs(flow.int_outputs(qm, task.x_test)))
        return out
    from ..delta import choose_thresholds
    best, _ = choose_thresholds(qm, qm.quantize_inputs(task.x_test), flow.int_score(task, qm),
                                delta_budget, layout=flow.TASK_LAYOUT)
    out.update(metric=abs(best.metric), thresholds=[list(t) for t in best.thresholds],
               macs_eliminated=best.macs_eliminated)
    return out


def design_stage(quant: dict, task, qconfig: dict, lanes: int, out_dir) -> dict:
    """Generate the design folder ``out_dir`` (quantization is re-run: it is milliseconds)."""
    from .. import flow
    task = resolve_task(task)
    qm = flow.quantize(task, quant_config(qconfig))
    delta = [tuple(t) for t in quant["thresholds"]] if quant["thresholds"] else None
    path = flow.generate_design(task, qm, out_dir, lanes, delta=delta,
                                sequences=min(DESIGN_SEQUENCES, len(task.x_test)))
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    return {"path": str(path), "cycles_per_step": step_cycles(manifest["cycles"])}


def synth_stage(design: dict, target: str, seeds, out_dir, timeout=SYNTH_TIMEOUT) -> dict:
    """Synthesize in a child process (its own process group, killed after ``timeout`` s).

    Returns the report's figures: ``resources`` ({resource: used, available, utilization}),
    ``fits``, ``overflow``, ``fmax_mhz``, ``seed``, ``performance``, ``wall_seconds``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = out_dir / "explore_result.json"
    result.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "hwgen.explore.stages", design["path"], target,
            ",".join(map(str, seeds)), str(out_dir), str(result)]
    with open(out_dir / "explore_synth.log", "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"synthesis took more than {timeout:g} s") from None
    if not result.exists():
        raise RuntimeError(f"synthesis exited with code {proc.returncode} "
                           f"(log: {out_dir / 'explore_synth.log'})")
    report = json.loads(result.read_text())
    if "error" in report:
        raise ChildError(report["error"])
    return report


def _synth_child(design_dir, target, seeds, out_dir, result) -> None:
    from ..synth import synthesize
    try:
        rep = synthesize(design_dir, target, out_dir=out_dir, progress=None, pack=False,
                         seeds=[int(s) for s in seeds.split(",")])
        keep = {"resources": {r: {k: v[k] for k in ("used", "available", "utilization")}
                              for r, v in rep["resources"].items()},
                **{k: rep.get(k) for k in ("fits", "overflow", "fmax_mhz", "seed",
                                           "performance", "wall_seconds")}}
    except Exception as exc:  # noqa: BLE001  (the parent records it)
        keep = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    Path(result).write_text(json.dumps(keep))


def sim_stage(design: dict) -> dict:
    """cocotb + Verilator on the design's vectors: passed, mismatches, compared."""
    from ..sim import simulate
    res = simulate(design["path"], max_sequences=20)
    return {"passed": res.passed, "mismatches": res.mismatches, "compared": res.compared}


STAGES = {"quant": quant_stage, "design": design_stage, "synth": synth_stage, "sim": sim_stage}


def failure(stage: str, exc: BaseException) -> dict:
    text = str(exc).strip().splitlines()
    name = "" if isinstance(exc, ChildError) else f"{type(exc).__name__}: "
    return {"ok": False, "stage": stage, "error": f"{name}{text[0] if text else ''}".rstrip(": ")}


def run_stage(stage: str, fn, cache_root, key: str, upstream: list, *args) -> dict:
    """Run ``fn(*args)`` (upstream results first) unless cached; cache the result.

    A failed upstream result is returned as is. An exception becomes `failure`, cached like
    a result (the same inputs and tools fail the same way) unless it is a timeout."""
    for up in upstream:
        if not up.get("ok", True):
            return up
    cache = Cache(cache_root)
    hit = cache.get(stage, key)
    if hit is not None and ("path" not in hit or Path(hit["path"]).is_dir()):
        return hit
    try:
        result = {"ok": True, **fn(*upstream, *args)}
    except TimeoutError as exc:  # the machine may have been busy: not cached, run again
        return failure(stage, exc)
    except Exception as exc:  # noqa: BLE001  (recorded with the point, and cached)
        result = failure(stage, exc)
    cache.put(stage, key, result)
    return result


if __name__ == "__main__":
    _synth_child(*sys.argv[1:6])
