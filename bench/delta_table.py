"""Delta networks on the bundled model: threshold vs accuracy vs MACs eliminated vs cycles.

For each threshold (one value for every path, then the per-layer choice within a 1-point
budget): the task metric on the test set, the MACs eliminated, and the cycles per step
measured in RTL simulation (cocotb + Verilator, no stalls) on the first test sequences,
with the ratio (cycle reduction) / (MAC reduction) on those same sequences.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import common  # noqa: F401  (puts the project on sys.path)

from hwgen import flow
from hwgen.delta import choose_thresholds, evaluate_delta
from hwgen.quant import QuantConfig
from hwgen.ref import DeltaStats, run_int
from hwgen.sim import simulate

SIM_SEQUENCES = 20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=flow.DEFAULT_MODEL)
    ap.add_argument("--lanes", type=int, default=flow.DEFAULT_LANES)
    ap.add_argument("--budget", type=float, default=1.0)
    args = ap.parse_args()
    task = flow.load_task(args.model)
    qm = flow.quantize(task, QuantConfig(weight_bits=8, act_bits=8))
    xq_all = qm.quantize_inputs(task.x_test)
    xq_sim = xq_all[:SIM_SEQUENCES]
    score = flow.int_score(task, qm)
    chosen, _ = choose_thresholds(qm, xq_all, score, args.budget)
    n = len(qm.layers)
    settings = [("dense", None)] + [(f"theta={t}", [(t, t)] * n) for t in (0, 4, 8, 16)]
    settings.append((f"chosen {chosen.thresholds}", chosen.thresholds))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, delta in settings:
            metric = task.metric(qm.decode_outputs(run_int(qm, xq_all, delta=delta)))
            stats = DeltaStats()
            run_int(qm, xq_sim, delta=delta or [(0, 0)] * n, stats=stats)
            full = evaluate_delta(qm, xq_all, score, delta or [(0, 0)] * n)
            design = flow.generate_design(task, qm, Path(tmp) / f"d{len(rows)}", args.lanes,
                                          delta=delta, sequences=SIM_SEQUENCES)
            result = simulate(design, stall_in=0.0, stall_out=0.0)
            rows.append((label, metric, full.macs_eliminated if delta else 0.0,
                         stats.macs_eliminated if delta else 0.0, result.step_period,
                         result.mismatches))
    dense_cycles = rows[0][4]
    print(f"{task.name}, P={args.lanes}: {task.metric_name} on {len(xq_all)} test sequences; "
          f"cycles on the first {SIM_SEQUENCES}")
    print(f"{'setting':<30} {task.metric_name:>11} {'MACs elim':>9} {'(sim set)':>9} "
          f"{'cycles/step':>11} {'cycle cut':>9} {'ratio':>6} {'mism':>4}")
    for label, metric, elim, elim_sim, cycles, mism in rows:
        cut = 1 - cycles / dense_cycles
        ratio = cut / elim_sim if elim_sim > 0 else float("nan")
        print(f"{label:<30} {metric:>11.3f} {100 * elim:>8.1f}% {100 * elim_sim:>8.1f}% "
              f"{cycles:>11.1f} {100 * cut:>8.1f}% {ratio:>6.2f} {mism:>4}")


if __name__ == "__main__":
    main()
