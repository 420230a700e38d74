"""`hwgen demo` / `make demo`: the main job on the bundled default model.

quantize (table vs float, and against one global format) -> generate the dense design ->
simulate it bit for bit -> delta thresholds within a 1-point budget -> generate and
simulate the delta design -> summary.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import flow
from .quant import QuantConfig

DEMO_BITS = (16, 8, 6, 4)
DESIGN_BITS = 8
DELTA_BUDGET = 1.0  # accuracy points (or bits/char)


def run_demo(args) -> int:
    with flow.Progress(f"load {args.model}"):
        task = flow.load_task(args.model)
    print(f"\n{task.name}: {task.ir.describe()}, task {task.meta.get('task')}, "
          f"{len(task.x_test)} test sequences\n")

    with flow.Progress("quantize at 16/8/6/4-bit weights (calibrated and global formats)"):
        rows = flow.quantization_table(task, DEMO_BITS)
    print(flow.format_quant_table(task, rows) + "\n")

    config = QuantConfig(weight_bits=DESIGN_BITS, act_bits=DESIGN_BITS)
    qm = flow.quantize(task, config)
    out = Path(args.out)
    dense_dir = out / f"{task.name}_p{args.lanes}"
    with flow.Progress(f"generate {dense_dir}"):
        flow.generate_design(task, qm, dense_dir, args.lanes)

    from .delta import choose_thresholds
    xq = qm.quantize_inputs(task.x_test)
    score = lambda y: task.score(qm.decode_outputs(y))  # noqa: E731
    with flow.Progress(f"choose delta thresholds within {DELTA_BUDGET} of dense"):
        best, path = choose_thresholds(qm, xq, score, DELTA_BUDGET)
    print(f"  dense {task.metric_name} {abs(path[0].metric):.3f} -> delta "
          f"{abs(best.metric):.3f} with thresholds {best.thresholds}; "
          f"MACs eliminated {100 * best.macs_eliminated:.1f}%\n")
    delta_dir = out / f"{task.name}_p{args.lanes}_delta"
    with flow.Progress(f"generate {delta_dir}"):
        flow.generate_design(task, qm, delta_dir, args.lanes, delta=best.thresholds)

    if args.no_sim:
        return 0
    from .sim import format_sim_report, simulate
    results = {}
    for label, d in (("dense", dense_dir), ("delta", delta_dir)):
        with flow.Progress(f"simulate {d} (cocotb + Verilator, random stalls)"):
            results[label] = simulate(d)
        print(format_sim_report(results[label]) + "\n")
    dense, delta = results["dense"], results["delta"]
    manifest = json.loads((delta_dir / "manifest.json").read_text())
    elim = manifest["delta"]["vectors"]["macs_eliminated"]  # on the simulated sequences
    cycle_cut = 1 - delta.cycles_per_step / dense.cycles_per_step
    print(f"delta design on the {delta.vectors} simulated sequences: {100 * elim:.1f}% of "
          f"MACs eliminated, {100 * cycle_cut:.1f}% fewer cycles per step "
          f"(cycle cut / MAC cut = {cycle_cut / max(elim, 1e-9):.3f})")
    bad = dense.mismatches + delta.mismatches
    print("RESULT: " + ("bit-exact" if bad == 0 else f"{bad} MISMATCHES"))
    return 0 if bad == 0 else 1
