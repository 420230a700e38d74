"""The large design of the throughput table on a trained model: GRU I=40 H=256, 8-bit, 64 lanes.

bench/throughput.py's big row (GRU I=40 H=256 at P = 64 on the ECP5-85F) has random weights, so
no honest delta sparsity. This gives it the bundled `speech_gru256` (the speech task: 40 log-mel
energies x 50 frames, 10 keywords, voices held out; `docs/speech.md`), quantized as the row is
(QuantConfig(weight_bits=8, act_bits=8)):

* the float and 8-bit dense accuracy on the valid and test splits;
* delta thresholds chosen by `hwgen.delta.choose_thresholds` within BUDGET point of the 8-bit
  dense accuracy on the *valid* split, then evaluated on the test split: the accuracy they keep
  and the share of the recurrent layer's MACs they eliminate;
* cycles per step at P lanes: the dense design's from the cycle model (`cycle_model(make_plan(
  qm, P))`, as bench/throughput.py's `design_cycles`), the delta design's averaged over every
  step of the test sequences, from the columns that fire (`delta_fired_columns`) through
  `hwgen.rtl.cycles.delta_step_cycles`; and the dense MACs of a step.

    python bench/speech_big.py [--lanes 64]

`big_delta_figures(lanes)` returns the figures as a dict for a row of the throughput table.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # as bench/common.py

from hwgen import flow  # noqa: E402
from hwgen.delta import choose_thresholds, evaluate_delta  # noqa: E402
from hwgen.ir import data_layout  # noqa: E402
from hwgen.models import load_task_data  # noqa: E402
from hwgen.quant import QuantConfig  # noqa: E402
from hwgen.ref import run_float  # noqa: E402
from hwgen.rtl.cycles import (cycle_model, delta_fired_columns,  # noqa: E402
                              delta_step_cycles, layer_cycles)
from hwgen.rtl.plan import make_plan  # noqa: E402

MODEL = "speech_gru256"
BUDGET = 1.0        # accuracy points below the 8-bit dense model, on the valid split
CONFIG = QuantConfig(weight_bits=8, act_bits=8)
BATCH = 25          # test sequences per reference run with a trace (memory)


def accuracy(qm, x, y, delta=None) -> float:
    out = qm.decode_outputs(flow.int_outputs(qm, x, delta=delta))
    return float(100.0 * np.mean(out.argmax(axis=-1) == y))


def big_delta_figures(lanes: int = 64, budget: float = BUDGET, log=None) -> dict:
    """The figures of `speech_gru256` (8-bit) at `lanes` MAC lanes, dense and delta.

    Returns
    -------
    dict
        ``model``, ``lanes``; ``float_test``, ``float_valid``, ``dense_test``, ``dense_valid``,
        ``delta_test``, ``delta_valid`` (accuracy, percent); ``thresholds`` [(theta_x,
        theta_h)] chosen on the valid split within `budget` points of ``dense_valid``;
        ``macs_eliminated`` (share of the recurrent MACs, test split) and
        ``macs_eliminated_valid``; ``macs_per_step`` (dense MACs of the recurrent layer);
        ``dense_cycles_per_step`` (the cycle model of the dense design: overlapped steps, its
        units); ``delta_cycles_per_step`` (the delta design's mean over every step of the test
        sequences, the first, dense, step of each included), ``delta_cycles_formula`` (the
        same with `layer_cycles`' fired-count formula), ``delta_units``, ``dense_units``;
        ``dense_head_per_sequence`` and ``delta_head_per_sequence`` (the cycle model's
        per-sequence overhead: the head, once after the T steps), ``steps`` (T),
        ``dense_gops_per_mhz`` and ``delta_gops_per_mhz`` (effective GOp/s per MHz of Fmax:
        2 x ``macs_per_step`` / cycles a step, the head's share left out).
    """
    say = log or (lambda *a: None)
    t0 = time.time()
    task = flow.load_task(MODEL)
    x_valid, y_valid = load_task_data(task.meta, "valid")
    x_valid = np.asarray(x_valid, dtype=np.float64)
    qm = flow.quantize(task, CONFIG)
    out = {"model": MODEL, "lanes": lanes, "describe": task.ir.describe(),
           "float_test": task.metric(run_float(task.ir, task.x_test, layout=flow.TASK_LAYOUT)),
           "float_valid": float(100.0 * np.mean(run_float(
               task.ir, x_valid, layout=flow.TASK_LAYOUT).argmax(-1) == y_valid)),
           "dense_test": accuracy(qm, task.x_test, task.y_test),
           "dense_valid": accuracy(qm, x_valid, y_valid)}
    say(f"{MODEL}: accuracies {out} ({time.time() - t0:.0f} s)")

    def valid_score(y_int):
        return float(100.0 * np.mean(qm.decode_outputs(y_int).argmax(-1) == y_valid))
    best, _ = choose_thresholds(qm, qm.quantize_inputs(x_valid), valid_score, budget,
                                layout=flow.TASK_LAYOUT,
                                progress=lambda p: say(f"  {p.thresholds}: {p.metric:.2f} %, "
                                                       f"{100 * p.macs_eliminated:.1f} %"))
    delta = [tuple(t) for t in best.thresholds]
    xq_test = qm.quantize_inputs(task.x_test)
    test_point = evaluate_delta(qm, xq_test, flow.int_score(task, qm), delta,
                                layout=flow.TASK_LAYOUT)
    out.update(thresholds=delta, delta_valid=best.metric,
               macs_eliminated_valid=best.macs_eliminated, delta_test=test_point.metric,
               macs_eliminated=test_point.macs_eliminated)
    say(f"thresholds {delta} ({time.time() - t0:.0f} s)")

    dense_plan = make_plan(qm, lanes)
    dense = cycle_model(dense_plan, qm.input_size, qm.head_mode)
    delta_plan = make_plan(qm, lanes, delta=delta)
    delta_model = cycle_model(delta_plan, qm.input_size, qm.head_mode)  # every column fires
    steps, formula = [], []
    xq_nti = np.asarray(xq_test)            # (N, T, I): the task's layout
    assert data_layout(qm.meta) == "NTI"    # delta_fired_columns reads the model's own
    for start in range(0, len(xq_nti), BATCH):
        for seq in delta_fired_columns(qm, xq_nti[start:start + BATCH], delta):
            for fired in seq:
                c = delta_step_cycles(delta_plan, qm.input_size, fired)
                steps.append(c["per_step"])
                # the same step with layer_cycles' max(fired x gpc, columns) pass instead
                formula.append(c["per_step"] - sum(c["matrix"]) + sum(
                    layer_cycles(lp, lanes, n, delta_plan.units)["matrix"]
                    for lp, n in zip(delta_plan.layers, c["fired"])))
    out.update(macs_per_step=dense["macs_per_step"], dense_cycles_per_step=dense["per_step"],
               dense_units=dense_plan.units, delta_units=delta_plan.units,
               delta_cycles_per_step=float(np.mean(steps)),
               delta_cycles_formula=float(np.mean(formula)),
               delta_cycles_all_fire=delta_model["per_step"],
               dense_head_per_sequence=dense["per_sequence_overhead"],
               delta_head_per_sequence=delta_model["per_sequence_overhead"],
               steps=int(xq_nti.shape[1]), seconds=time.time() - t0)
    # GOp/s per MHz of Fmax, as the delta-RNN papers count: 2 x the dense MACs a step
    for kind in ("dense", "delta"):
        cycles = out[f"{kind}_cycles_per_step"]
        out[f"{kind}_gops_per_mhz"] = 2 * out["macs_per_step"] / cycles / 1e3
    return out


def format_figures(f: dict) -> str:
    t = f["steps"]
    dense_seq = f["dense_cycles_per_step"] + f["dense_head_per_sequence"] / t
    delta_seq = f["delta_cycles_per_step"] + f["delta_head_per_sequence"] / t
    return "\n".join([
        f"{f['model']} ({f['describe']}), 8-bit weights and activations, P = {f['lanes']}",
        f"accuracy %        {'valid':>7} {'test':>7}",
        f"  float           {f['float_valid']:>7.2f} {f['float_test']:>7.2f}",
        f"  8-bit dense     {f['dense_valid']:>7.2f} {f['dense_test']:>7.2f}",
        f"  8-bit delta     {f['delta_valid']:>7.2f} {f['delta_test']:>7.2f}"
        f"   thresholds (theta_x, theta_h) {f['thresholds']}, chosen on valid within "
        f"{BUDGET} point",
        f"MACs eliminated by delta: {100 * f['macs_eliminated']:.1f} % on test "
        f"({100 * f['macs_eliminated_valid']:.1f} % on valid); dense MACs a step "
        f"{f['macs_per_step']}",
        f"cycles per step   dense {f['dense_cycles_per_step']} (E = {f['dense_units']}, "
        f"overlapped steps), delta {f['delta_cycles_per_step']:.1f} mean over the test steps "
        f"(E = {f['delta_units']}; {f['delta_cycles_all_fire']} when every column fires; "
        f"{f['delta_cycles_formula']:.1f} by max(fired x gpc, columns))",
        f"  with the head once a sequence of {t}: dense {dense_seq:.1f}, delta {delta_seq:.1f}",
        f"  delta / dense cycles {f['delta_cycles_per_step'] / f['dense_cycles_per_step']:.3f}, "
        f"effective speed-up {f['dense_cycles_per_step'] / f['delta_cycles_per_step']:.2f}x",
        f"effective GOp/s per MHz of Fmax (2 x dense MACs a step / cycles a step): dense "
        f"{f['dense_gops_per_mhz']:.4f}, delta {f['delta_gops_per_mhz']:.4f} (at 100 MHz "
        f"{100 * f['dense_gops_per_mhz']:.1f} / {100 * f['delta_gops_per_mhz']:.1f} GOp/s)",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, default=64)
    ap.add_argument("--budget", type=float, default=BUDGET)
    args = ap.parse_args()
    figures = big_delta_figures(args.lanes, args.budget, log=print)
    print(format_figures(figures))
    print(f"({figures['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
