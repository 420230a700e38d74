"""The sweep: the product of the axes, its shared stages as Dask tasks, its points.

One quantization (with its test-set metric and delta thresholds) per (weight bits,
activation bits, PWL segments, delta budget) feeds every lane count and target; one design
per (quantization, lanes); one synthesis per (design, target, seeds), the best seed kept.
Results already in the cache are read, not submitted; when nothing is missing no cluster
is started at all.
"""
from __future__ import annotations

from dataclasses import dataclass
import functools
import itertools
import os
from pathlib import Path
import time
import uuid

from .cache import Cache, model_digest, stage_key, tool_versions
from .pareto import mark_front
from .stages import STAGES, SYNTH_TIMEOUT, failure, quant_config, resolve_task, run_stage
from ..flow import FlowError


#: The resources whose largest used/available is a point's ``utilization``. DSPs are left
#: out: the iCE40 flow fills every SB_MAC16 it has and moves the other multipliers to logic
#: (`hwgen.synth.flow`), so their cost shows in LUTs while the DSP count is always "all".
UTILIZATION_OF = ("LUT", "FF", "BRAM", "SPRAM")


class ExploreError(FlowError):
    """A sweep cannot start: a bad axis, override file or scheduler address."""


@dataclass
class Axes:
    """The values swept; a point is one element of their product.

    ``delta_budget`` None is a dense design; a number chooses delta thresholds that lose at
    most that much metric (`hwgen.delta.choose_thresholds`). ``seeds`` are the nextpnr
    placement seeds of every synthesis (the best is kept), not an axis.
    """

    weight_bits: tuple = (4, 6, 8)
    act_bits: tuple = (8,)
    lanes: tuple = (1, 2, 4)
    delta_budget: tuple = (None,)
    pwl_segments: tuple = (16,)
    target: tuple = ("ice40-up5k", "ecp5-85f")
    seeds: tuple = (1,)

    def size(self) -> int:
        return (len(self.weight_bits) * len(self.act_bits) * len(self.pwl_segments)
                * len(self.delta_budget) * len(self.lanes) * len(self.target))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _connect(scheduler, workers):
    """``(client, cluster or None)``: a client of ``scheduler``, or of a new LocalCluster."""
    from distributed import Client, LocalCluster
    if scheduler:
        try:
            return Client(scheduler, timeout="15s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExploreError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                           processes=True, dashboard_address=":0")
    return Client(cluster), cluster


def explore(task, axes: Axes, out_dir, overrides: dict | None = None, simulate: bool = False,
            scheduler: str | None = None, workers: int | None = None, client=None,
            stages: dict | None = None, synth_timeout: float = SYNTH_TIMEOUT,
            retry_failed: bool = False, log=None) -> list[dict]:
    """Run (or read from the cache) every point of ``axes``; write the outputs; return points.

    Parameters
    ----------
    task : a `hwgen.flow.Task`, or a model name for `hwgen.flow.load_task` (workers load
        it themselves; a Task is sent to them).
    axes : the values swept.
    out_dir : outputs (points.json, points.csv, PNGs, report.html) and ``cache/``; with a
        remote scheduler it must be a path every worker sees (design folders go there).
    overrides : fixed `hwgen.quant.QuantConfig` fields for every point, e.g.
        ``{"overrides": {"l0.wh": 16}}``.
    simulate : also run every design under cocotb against its vectors.
    scheduler : a Dask scheduler address; None starts a LocalCluster of ``workers``
        processes (default: the CPU count). ``client``: an existing client instead.
    stages : replacements of `hwgen.explore.stages.STAGES` entries (tests).
    synth_timeout : seconds one synthesis may take; a timeout is recorded, not cached.
    retry_failed : run again the stages whose cached result is a failure (a tool error is
        cached like a result: the same inputs and tools fail the same way).
    log : called with one progress line per finished task (default: print).

    Returns
    -------
    list of dict
        One record per point (see `hwgen.explore.report.COLUMNS`), ``pareto`` marked.
    """
    from .report import write_outputs
    log = log or functools.partial(print, flush=True)
    stages = {**STAGES, **(stages or {})}
    ref = task
    task = resolve_task(task)
    n_layers, cell = len(task.ir.layers), task.ir.cell
    out_dir = Path(out_dir)
    cache = Cache(out_dir / "cache")
    digest, versions = model_digest(task), tool_versions()
    seeds = list(axes.seeds)

    quants = {}
    for wb, ab, seg, budget in itertools.product(axes.weight_bits, axes.act_bits,
                                                 axes.pwl_segments, axes.delta_budget):
        qc = {**(overrides or {}), "weight_bits": wb, "act_bits": ab, "pwl_segments": seg}
        try:
            quant_config(qc).validate(n_layers, cell)
        except TypeError as exc:
            raise ExploreError(f"bad quantization setting in the overrides: {exc}") from None
        quants[(wb, ab, seg, budget)] = (qc, stage_key("quant", {"qconfig": qc,
                                                                 "delta_budget": budget},
                                                       digest, versions))

    refs, labels, conn = {}, {}, {}
    start = time.monotonic()

    def get(stage, key, upstream, *args, label=""):
        if (stage, key) not in refs:
            hit = cache.get(stage, key)
            if hit is not None and retry_failed and not hit.get("ok", True):
                cache.path(stage, key).unlink(missing_ok=True)
                hit = None
            if hit is not None and ("path" not in hit or Path(hit["path"]).is_dir()):
                refs[stage, key] = hit
            else:
                if not conn:
                    conn["client"], conn["cluster"] = ((client, None) if client else
                                                       _connect(scheduler, workers))
                fut = conn["client"].submit(
                    run_stage, stage, stages[stage], str(cache.root), key, upstream, *args,
                    key=f"{stage}-{key[:12]}-{uuid.uuid4().hex[:6]}", retries=2, pure=False)
                refs[stage, key], labels[fut.key] = fut, f"{stage} {label}"
        return refs[stage, key]

    plan = []
    for (wb, ab, seg, budget), (qc, qkey) in quants.items():
        tag = f"w{wb} a{ab} s{seg}" + ("" if budget is None else f" d{budget:g}")
        for lanes in axes.lanes:
            dkey = stage_key("design", {"quant": qkey, "lanes": lanes}, digest, versions)
            for target in axes.target:
                skey = stage_key("synth", {"design": dkey, "target": target, "seeds": seeds},
                                 digest, versions)
                plan.append((dict(weight_bits=wb, act_bits=ab, pwl_segments=seg,
                                  delta_budget=budget, lanes=lanes, target=target),
                             qc, qkey, dkey, skey, f"{tag} p{lanes}"))

    point_refs = []
    for cfg, qc, qkey, dkey, skey, tag in plan:
        need_design = (cache.get("synth", skey) is None or cache.get("design", dkey)
                       is not None or (simulate and cache.get("sim", dkey) is None))
        quant = get("quant", qkey, [], ref, qc, cfg["delta_budget"],
                    label=tag.rsplit(" ", 1)[0])
        design = (get("design", dkey, [quant], ref, qc, cfg["lanes"],
                      str(cache.folder("design", dkey)), label=tag) if need_design else None)
        synth = get("synth", skey, [design], cfg["target"], seeds,
                    str(cache.folder("synth", skey)), synth_timeout,
                    label=f"{tag} {cfg['target']}")
        sim = get("sim", dkey, [design], label=tag) if simulate else None
        point_refs.append((cfg, quant, design, synth, sim))

    futures = [r for r in refs.values() if not isinstance(r, dict)]
    total = len(point_refs)
    cached = sum(1 for p in point_refs if all(isinstance(r, (dict, type(None))) for r in p[1:]))
    log(f"[explore] {total} points, {cached} from the cache, {len(futures)} tasks to run")
    try:
        results = (_watch(conn["client"], futures, labels, point_refs, cached, start, log)
                   if futures else {})
        values = {k: r if isinstance(r, dict) else results[r.key] for k, r in refs.items()}
    finally:
        if conn and conn["client"] is not client:
            conn["client"].close()
            if conn["cluster"] is not None:
                conn["cluster"].close()
    resolved = {id(r): values[k] for k, r in refs.items()}
    points = [_record(cfg, *(resolved.get(id(r)) if r is not None else None
                             for r in (quant, design, synth, sim)), seeds)
              for cfg, quant, design, synth, sim in point_refs]
    mark_front(points, task.higher_is_better())
    paths = write_outputs(points, out_dir, task.name, task.metric_name,
                          task.higher_is_better())
    log(f"[explore] done in {_clock(time.monotonic() - start)}: "
        f"{sum(p['status'] == 'ok' for p in points)} ok, "
        f"{sum(p['status'] == 'no fit' for p in points)} do not fit, "
        f"{sum(p['status'] == 'failed' for p in points)} failed, "
        f"{sum(p['pareto'] for p in points)} on the front; wrote "
        f"{', '.join(p.name for p in paths)} in {out_dir}/")
    return points


def _result(fut) -> dict:
    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001  (a task Dask gave up on: recorded)
        return failure("dask", exc)


def _watch(client, futures, labels, point_refs, cached, start, log) -> dict:
    """Wait for ``futures``, one progress line per finished task (points done/total,
    running, failed, elapsed, time left); return ``{future key: result}``."""
    from distributed import as_completed
    results, total = {}, len(point_refs)
    for fut in as_completed(futures):
        res = results[fut.key] = _result(fut)
        vals = [[r if isinstance(r, dict) else results.get(r.key) for r in p[1:]
                 if r is not None] for p in point_refs]
        done = [v for v in vals if all(x is not None for x in v)]
        failed = sum(1 for v in done if any(not x.get("ok", True) for x in v))
        elapsed, fresh = time.monotonic() - start, len(done) - cached
        left = (f"~{_clock(elapsed / fresh * (total - len(done)))} left" if fresh > 0
                else "time left unknown")
        try:
            threads = client.nthreads()
            running = sum(min(len(v), threads.get(w, 1)) for w, v in client.processing().items())
        except Exception:  # noqa: BLE001  (progress only)
            running = 0
        waiting = len(futures) - len(results) - running
        what = "ok" if res.get("ok") else f"FAILED {res.get('error')}"
        log(f"[explore] {len(done)}/{total} points, {running} tasks running, {waiting} waiting, "
            f"{failed} failed, "
            f"{_clock(elapsed)} elapsed, {left} | {labels.get(fut.key, fut.key)}: {what}")
    return results


def _reason(synth: dict) -> str:
    parts = []
    for o in synth.get("overflow") or []:
        used = "?" if o.get("used") is None else o["used"]
        parts.append(f"{o['resource']} {used} > {o.get('available')}")
    return "does not fit: " + (", ".join(parts) or "place and route ran out of room")


def _record(cfg, quant, design, synth, sim, seeds) -> dict:
    """One point's row (see `hwgen.explore.report.COLUMNS`)."""
    p = {**cfg, "seeds": ",".join(map(str, seeds)), "metric": None,
         "weight_memory_bits": None, "thresholds": None, "macs_eliminated": None,
         "cycles_per_step": None, "fits": None, "overflow": None, "fmax_mhz": None,
         "latency_us": None, "throughput": None, "utilization": None, "sim_passed": None,
         "status": "ok", "reason": ""}
    for res in (quant, design, synth, sim):
        if res is not None and not res.get("ok", True):
            p.update(status="failed", reason=f"{res.get('stage')}: {res.get('error')}")
            break
    if quant and quant.get("ok"):
        p.update({k: quant[k] for k in ("metric", "weight_memory_bits", "thresholds",
                                        "macs_eliminated")})
    if design and design.get("ok"):
        p["cycles_per_step"] = design["cycles_per_step"]
    if synth and synth.get("ok"):
        res = synth["resources"]
        for r in ("LUT", "FF", "DSP", "BRAM", "SPRAM"):
            p[r] = res[r]["used"] if r in res else None
        utils = [v["utilization"] for r, v in res.items()
                 if r in UTILIZATION_OF and v.get("utilization") is not None]
        perf = synth.get("performance") or {}
        p.update(fits=synth["fits"], overflow=synth.get("overflow") or [],
                 fmax_mhz=synth.get("fmax_mhz"), utilization=max(utils) if utils else None,
                 latency_us=perf.get("latency_per_sequence_us"),
                 throughput=perf.get("sequences_per_s"))
        p["cycles_per_step"] = perf.get("per_step", p["cycles_per_step"])
        if not synth["fits"]:
            p.update(status="no fit", reason=_reason(synth))
    if sim and sim.get("ok"):
        p["sim_passed"] = sim["passed"]
        if not sim["passed"] and p["status"] == "ok":
            p.update(status="failed", reason=f"sim: {sim['mismatches']} mismatches")
    return p
