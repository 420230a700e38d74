"""The Shrink-and-Eliminate table on the speech task made here (issue 15 §1).

Per cell (the bundled speech_lstm, speech_gru, speech_ligru, speech_sru: keyword spotting on
espeak-ng voices never heard in training, 40 log-mel energies x 50 frames):

* the chosen post-training config: weights at 4 bits, activations at 8, biases at 16 (the
  quantizer's default); then, while the accuracy on the *valid* split is more than
  BUDGET points below the float model's, the path (any quantized tensor but the biases: a
  weight matrix, the inputs, a state, pre-activations, activations, outputs) whose 16-bit
  width gains the most valid accuracy is left wide, the one adding the least weight memory
  on a tie (an activation path adds none) — the seed's "selected paths" skipped by
  quantization, chosen on voices that are neither trained on nor tested;
* its weight compression against float32 (all weights and biases), and its error increase
  over the float model on the test split;
* the share of MACs a delta network eliminates on the test split with thresholds chosen
  (`hwgen.delta.choose_thresholds`, as for the bundled designs) within BUDGET point of the
  chosen config's dense accuracy, and the accuracy it keeps.

The seed's numbers (Rezk et al., "Shrink and Eliminate", Information 13(4):176, 2022: TIMIT
phone recognition, their own models) are printed next to ours, marked as published.
`--cells-table` adds `bench/cells.py`'s table on these models (8/4-bit, delta at 8-bit,
cycles per step at 2 and 8 lanes).
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # as bench/common.py

from hwgen import flow  # noqa: E402
from hwgen.data import speech_voices  # noqa: E402
from hwgen.delta import choose_thresholds  # noqa: E402
from hwgen.models import load_task_data  # noqa: E402
from hwgen.quant import QuantConfig, tensor_names  # noqa: E402
from hwgen.ref import run_float  # noqa: E402

SPEECH_MODELS = ["speech_lstm", "speech_gru", "speech_ligru", "speech_sru"]
BUDGET = 1.0          # accuracy points
BASE = dict(weight_bits=4, act_bits=8)
WIDE = 16
# the seed's figures on TIMIT (published, not measured here): compression > 85 % for all four,
# error increase in points, and "more than 50 % of the operations" eliminated by delta
PUBLISHED = {"lstm": 0.6, "gru": 0.0, "ligru": 2.1, "sru": 0.2}
PUBLISHED_COMPRESSION = "> 85 %"
PUBLISHED_ELIMINATED = "> 50 %"


def paths(task: flow.Task) -> list[str]:
    """The tensors a path choice may leave wide: every quantized tensor but the biases
    (already 16 bits): the inputs, each layer's matrices, state, pre-activations and
    activations, the head's weights and outputs (`hwgen.quant.tensor_names`)."""
    return [n for n in tensor_names(len(task.ir.layers), task.ir.cell)
            if n.split(".")[-1] != "b"]


def accuracy(task: flow.Task, qm, x, y) -> float:
    out = qm.decode_outputs(flow.int_outputs(qm, x))
    return float(100.0 * np.mean(out.argmax(axis=-1) == y))


def choose_config(task: flow.Task, x_valid, y_valid, log=print) -> tuple[QuantConfig, float]:
    """Greedy selected-path widening on the valid split (see the module docstring)."""
    float_valid = float(100.0 * np.mean(
        run_float(task.ir, x_valid, layout=flow.TASK_LAYOUT).argmax(-1) == y_valid))
    overrides: dict = {}
    config = QuantConfig(**BASE)
    acc = accuracy(task, flow.quantize(task, config), x_valid, y_valid)
    log(f"  valid: float {float_valid:.2f}, 4-bit weights / 8-bit activations {acc:.2f}")
    while float_valid - acc > BUDGET:
        trials = []
        for path in paths(task):
            if path in overrides:
                continue
            cfg = QuantConfig(**BASE, overrides={**overrides, path: WIDE})
            qm = flow.quantize(task, cfg)
            trials.append((accuracy(task, qm, x_valid, y_valid), -qm.memory_bits()["weight_bits"],
                           path, cfg))
        if not trials:
            break
        best = max(trials, key=lambda t: t[:2])
        if best[0] <= acc:
            log(f"  valid: no path left wide gains accuracy ({acc:.2f})")
            break
        acc, _, path, config = best
        overrides[path] = WIDE
        log(f"  valid: {path} at {WIDE} bits -> {acc:.2f}")
    return config, float_valid


def speech_row(name: str, log=print) -> dict:
    t0 = time.time()
    task = flow.load_task(name)
    x_valid, y_valid = load_task_data(task.meta, "valid")
    x_valid = np.asarray(x_valid, dtype=np.float64)
    log(f"{name} ({task.ir.describe()})")
    row = {"model": name, "cell": task.ir.cell,
           "float": task.metric(run_float(task.ir, task.x_test, layout=flow.TASK_LAYOUT))}
    for bits in (8, 4):
        qm = flow.quantize(task, QuantConfig(weight_bits=bits, act_bits=8))
        row[f"q{bits}"] = accuracy(task, qm, task.x_test, task.y_test)
    config, row["float_valid"] = choose_config(task, x_valid, y_valid, log)
    qm = flow.quantize(task, config)
    mem = qm.memory_bits()
    row["wide"] = sorted(config.overrides)
    row["kbit"] = mem["weight_bits"] / 1000
    row["kbit_float"] = mem["weight_bits_float32"] / 1000
    row["compression"] = 1 - mem["weight_bits"] / mem["weight_bits_float32"]
    row["chosen"] = accuracy(task, qm, task.x_test, task.y_test)
    row["error_increase"] = row["float"] - row["chosen"]
    xq = qm.quantize_inputs(task.x_test)
    best, _ = choose_thresholds(qm, xq, flow.int_score(task, qm), BUDGET, layout=flow.TASK_LAYOUT)
    row["delta"], row["thresholds"] = best.macs_eliminated, best.thresholds
    row["delta_metric"] = abs(best.metric)
    row["seconds"] = time.time() - t0
    log(f"  {row['seconds']:.0f} s")
    return row


def format_table(rows: list[dict]) -> str:
    lines = [
        "| cell | float acc. | 8-bit | 4-bit | chosen config (4-bit W, 8-bit A) + wide paths | "
        "weights kbit (fp32) | compression, ours | published | error increase, ours "
        "| published | MACs eliminated by delta, ours (acc.) | published |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        wide = ", ".join(f"{p} at {WIDE}" for p in r["wide"]) or "none"
        lines.append(
            f"| {r['cell'].upper() if r['cell'] != 'ligru' else 'LiGRU'} | {r['float']:.2f} % "
            f"| {r['q8']:.2f} % | {r['q4']:.2f} % | {wide} "
            f"| {r['kbit']:.1f} ({r['kbit_float']:.1f}) "
            f"| {100 * r['compression']:.1f} % | {PUBLISHED_COMPRESSION} "
            f"| {r['error_increase']:+.2f} pt | {PUBLISHED[r['cell']]:.1f} pt "
            f"| {100 * r['delta']:.1f} % ({r['delta_metric']:.2f} %) | {PUBLISHED_ELIMINATED} |")
    lines.append("")
    lines += [f"- {r['cell']}: delta thresholds (theta_x, theta_h) per layer {r['thresholds']}"
              for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=SPEECH_MODELS)
    ap.add_argument("--cells-table", action="store_true",
                    help="also print bench/cells.py's table for these models")
    args = ap.parse_args()
    rows = [speech_row(name) for name in args.models]
    n_test = len(speech_voices("test"))
    n_valid = len(speech_voices("valid"))
    print(f"\nspeech task: accuracy on the test split ({n_test} utterances of "
          f"{len(set(speech_voices('test')))} voices never heard in training; one utterance is "
          f"{100 / n_test:.2f} point, {100 / n_valid:.2f} on the valid split that chose the "
          f"paths). 'published' = the seed's TIMIT figures, not measured here.")
    print(format_table(rows))
    if args.cells_table:
        print()
        print(flow.format_cell_table([flow.cell_comparison_row(n) for n in args.models]))



if __name__ == "__main__":
    main()
