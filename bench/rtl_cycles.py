"""RTL cycles per step and MAC-lane utilization, measured in cocotb + Verilator.

For a GRU with I=16, H=64, P=8 (the reference point) and for the bundled default model:
ideal cycles (MACs / P), cycles of the matrix phase, measured cycles per step, utilization
of the matrix phase and of the whole step, activation-phase overhead, generation and
simulation wall time, simulation speed.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from common import random_task_model, smooth_inputs

from hwgen.quant import QuantConfig, quantize_model
from hwgen.rtl.emit import generate
from hwgen.sim import simulate


def measure(label: str, qm, xq, lanes: int, workdir: Path) -> dict:
    t0 = time.perf_counter()
    design = generate(qm, workdir / label.replace(" ", "_").replace("=", ""), lanes=lanes,
                      inputs=xq)
    t_gen = time.perf_counter() - t0
    result = simulate(design, stall_in=0.0, stall_out=0.0)
    cyc = json.loads((design / "manifest.json").read_text())["cycles"]
    return {"label": label, "ideal": cyc["ideal_per_step"], "matrix": cyc["matrix_per_step"],
            "model": cyc["per_step"], "measured": result.step_interval,
            "matrix_util": cyc["matrix_utilization"],
            "step_util": cyc["ideal_per_step"] / result.step_interval,
            "act_overhead": sum(l["activate"] for l in cyc["layers"]) / result.step_interval,
            "gen_s": t_gen, "build_s": result.build_time, "sim_s": result.wall_time,
            "cycles_per_s": result.sim_cycles_per_s, "mismatches": result.mismatches}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ir = random_task_model("gru", 16, 64)
        x = smooth_inputs(20, 10, 16)
        qm = quantize_model(ir, x, QuantConfig(weight_bits=8, act_bits=8))
        rows.append(measure("GRU I=16 H=64 P=8", qm, qm.quantize_inputs(x), 8, work))
        try:
            from hwgen import flow
            task = flow.load_task(flow.DEFAULT_MODEL)
            qm = flow.quantize(task, QuantConfig(weight_bits=8, act_bits=8))
            lanes = flow.DEFAULT_LANES
            rows.append(measure(f"{task.name} P={lanes}", qm, flow.design_vectors(task, qm, 20),
                                lanes, work))
        except ImportError as exc:  # bundled models not present
            print(f"(bundled model skipped: {exc})")
    print("measured = cycles between step ends, the per-sequence head amortized over T")
    print(f"{'design':<22} {'ideal':>7} {'matrix':>7} {'model':>6} {'measured':>8} "
          f"{'util mat':>8} {'util step':>9} {'act ovh':>7} {'gen s':>6} {'build s':>7} "
          f"{'sim s':>6} {'cycles/s':>9} {'mism':>4}")
    for r in rows:
        print(f"{r['label']:<22} {r['ideal']:>7.0f} {r['matrix']:>7} {r['model']:>6} "
              f"{r['measured']:>8.0f} {r['matrix_util']:>8.3f} {r['step_util']:>9.3f} "
              f"{100 * r['act_overhead']:>6.1f}% {r['gen_s']:>6.1f} {r['build_s']:>7.1f} "
              f"{r['sim_s']:>6.1f} {r['cycles_per_s']:>9.0f} {r['mismatches']:>4}")


if __name__ == "__main__":
    main()
