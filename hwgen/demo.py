"""`hwgen demo` / `make demo`: the main job on the bundled default model.

quantize (table vs float, and against one global format) -> generate the dense design ->
choose delta thresholds within a 1-point budget and generate the delta design -> simulate
both bit for bit -> summary; and the four cells side by side on the digits task.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import flow

DEMO_BITS = (16, 8, 6, 4)


def _figures(task, quant_rows, qm, chosen, folder: Path) -> None:
    """The quantization table and a uniform-threshold delta sweep, drawn."""
    from .delta import sweep
    from .plots import delta_figure, quantization_figure
    folder.mkdir(parents=True, exist_ok=True)
    xq = qm.quantize_inputs(task.x_test)
    points = sweep(qm, xq, flow.int_score(task, qm))
    paths = [quantization_figure(quant_rows, task.metric_name, task.name,
                                 folder / "quantization.png"),
             delta_figure(points, points[0].metric, task.metric_name, folder / "delta.png",
                          chosen, flow.DELTA_BUDGET)]
    print("  figures: " + ", ".join(str(p) for p in paths) + "\n")


def run_demo(args) -> int:
    """Run the demo for the parsed `hwgen demo` arguments; return the exit code."""
    from .cli import EXIT_FAIL, EXIT_OK, check_writable, writing
    out = Path(args.out)
    check_writable(out)
    with flow.Progress(f"load {args.model}"):
        task = flow.load_task(args.model)
    print(f"\n{task.name}: {task.ir.describe()}, task {task.meta.get('task')}, "
          f"{len(task.x_test)} test sequences\n")

    with flow.Progress("quantize at 16/8/6/4-bit weights (calibrated and global formats)"):
        rows = flow.quantization_table(task, DEMO_BITS)
    print(flow.format_quant_table(task, rows) + "\n")

    with flow.Progress(f"quantize at {flow.DESIGN_BITS} bits, choose delta thresholds "
                       f"within {flow.DELTA_BUDGET} of dense"):
        designs = flow.bundled_designs(task, args.lanes)
    (dense_name, qm, _, _), (delta_name, _, thresholds, best) = designs
    print(f"  delta thresholds {thresholds}: {task.metric_name} {abs(best.metric):.3f}, "
          f"MACs eliminated {100 * best.macs_eliminated:.1f}% on the test set\n")
    with writing(out):
        _figures(task, rows, qm, best, out / "figures")
    dense_dir, delta_dir = out / dense_name, out / delta_name
    for name, qm_, delta, _ in designs:
        with flow.Progress(f"generate {out / name}"), writing(out / name):
            flow.generate_design(task, qm_, out / name, args.lanes, delta=delta)

    with flow.Progress("the four cells on the digits task (quantize, delta, cycle model)"):
        cells = [flow.cell_comparison_row(name) for name in flow.CELL_MODELS]
    print(flow.format_cell_table(cells) + "\n")

    if args.no_sim:
        return EXIT_OK
    from .sim import format_sim_report, simulate
    results = {}
    for label, d in (("dense", dense_dir), ("delta", delta_dir)):
        with flow.Progress(f"simulate {d} (cocotb + Verilator, random stalls)"):
            results[label] = simulate(d)
        print(format_sim_report(results[label]) + "\n")
    dense, delta = results["dense"], results["delta"]
    manifest = json.loads((delta_dir / "manifest.json").read_text())
    elim = manifest["delta"]["vectors"]["macs_eliminated"]  # on the simulated sequences
    cycle_cut = 1 - delta.step_period / dense.step_period
    print(f"delta design on the {delta.vectors} simulated sequences: {100 * elim:.1f}% of "
          f"MACs eliminated, {100 * cycle_cut:.1f}% fewer cycles per step "
          f"(cycle cut / MAC cut = {cycle_cut / max(elim, 1e-9):.3f})")
    passed = dense.passed and delta.passed
    print("RESULT: " + ("bit-exact" if passed else
                        f"FAILED: {dense.mismatches + delta.mismatches} mismatches, compared "
                        f"{dense.compared + delta.compared} of "
                        f"{dense.expected + delta.expected} outputs"))
    return EXIT_OK if passed else EXIT_FAIL
