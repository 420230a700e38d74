"""The flow: model -> quantized model -> design folder -> simulation -> reports.

Each step is a plain function; `hwgen.cli` and the demo chain them.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import time

import numpy as np

from .frontend import from_torch
from .ir import ModelIR
from .quant import QuantConfig, quantize_model
from .qmodel import QModel
from .ref import run_float, run_int

DEFAULT_MODEL = "digits_lstm"
DEFAULT_LANES = 2  # the demo designs; see docs/hardware.md for the trade-off
CALIBRATION_SEQUENCES = 256
TASK_LAYOUT = "NTI"  # a task's data arrays are batch-major, whatever its model's own layout


class FlowError(RuntimeError):
    """A flow step cannot go on; the message says why and what to do."""


LM_METRICS = {"char_lm": "bits/char", "word_lm": "bits/word"}  # bundled language models


@dataclass
class Task:
    """A model with its data and metric."""

    name: str
    ir: ModelIR
    meta: dict
    x_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def kind(self) -> str:
        return "lm" if self.meta.get("task", "") in LM_METRICS else "classify"

    @property
    def metric_name(self) -> str:
        return LM_METRICS[self.meta["task"]] if self.kind == "lm" else "accuracy %"

    def metric(self, outputs: np.ndarray) -> float:
        """Accuracy in percent, or bits per character (word), of float outputs (logits)."""
        if self.kind == "lm":
            z = outputs - outputs.max(axis=-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            picked = np.take_along_axis(logp, self.y_test[..., None], axis=-1)
            return float(-picked.mean() / np.log(2))
        return float(100.0 * np.mean(outputs.argmax(axis=-1) == self.y_test))

    def higher_is_better(self) -> bool:
        return self.kind != "lm"

    def score(self, outputs: np.ndarray) -> float:
        """The metric signed so that higher is better (for threshold searches)."""
        value = self.metric(outputs)
        return value if self.higher_is_better() else -value


def load_task(name: str = DEFAULT_MODEL, **user) -> Task:
    """A bundled model (see `hwgen list`) with its calibration and test data, or your own:
    a model file or ``package.module:attr`` with `user` options calib, test, head, layout
    (`hwgen.usermodel.load_user_task`)."""
    from .models import list_models, load_model, load_task_data

    user = {k: v for k, v in user.items() if v is not None}
    if name not in list_models():
        from .usermodel import load_user_task
        return load_user_task(name, **user)
    if user:
        raise FlowError(f"--{'/--'.join(user)}: for your own model; {name!r} is bundled "
                        f"and brings its own data")
    model, meta = load_model(name)
    x_train, _ = load_task_data(meta, "train")
    x_test, y_test = load_task_data(meta, "test")
    calib = x_train[np.linspace(0, len(x_train) - 1, min(CALIBRATION_SEQUENCES, len(x_train)))
                    .astype(int)]
    return Task(name, from_torch(model), meta, np.asarray(calib, dtype=np.float64),
                np.asarray(x_test, dtype=np.float64), np.asarray(y_test))


def quantize(task: Task, config: QuantConfig) -> QModel:
    qm = quantize_model(task.ir, task.x_calib, config, layout=TASK_LAYOUT)
    qm.meta["task"] = task.name
    return qm


def int_outputs(qm: QModel, x: np.ndarray, delta=None, stats=None) -> np.ndarray:
    return run_int(qm, qm.quantize_inputs(x), delta=delta, stats=stats, layout=TASK_LAYOUT)


def quantization_table(task: Task, weight_bits=(16, 8, 6, 4), act_bits: int | None = None,
                       schemes=("calibrated", "global"), embedding: str = "auto") -> list[dict]:
    """Float vs quantized metric, weight memory, and reference-vs-float error per width
    (`embedding`: the design of a model with an nn.Embedding, see `QuantConfig`)."""
    y_float = run_float(task.ir, task.x_test, layout=TASK_LAYOUT)
    rows = [{"scheme": "float32", "weight_bits": 32, "act_bits": 32,
             "metric": task.metric(y_float), "weight_kbit": None, "reduction": 0.0,
             "rms_error": 0.0}]
    for bits in weight_bits:
        for scheme in schemes:
            a_bits = act_bits or max(bits, 8)
            qm = quantize(task, QuantConfig(weight_bits=bits, act_bits=a_bits, scheme=scheme,
                                            embedding=embedding))
            y = qm.decode_outputs(int_outputs(qm, task.x_test))
            mem = qm.memory_bits()
            rows.append({
                "scheme": scheme, "weight_bits": bits, "act_bits": a_bits,
                "metric": task.metric(y),
                "weight_kbit": mem["weight_bits"] / 1000,
                "reduction": 1 - mem["weight_bits"] / mem["weight_bits_float32"],
                "rms_error": float(np.sqrt(np.mean((y - y_float) ** 2))),
                "embedding": qm.embedding_memory(),
            })
    return rows


def format_quant_table(task: Task, rows: list[dict]) -> str:
    head = (f"{'scheme':<11} {'W bits':>6} {'A bits':>6} {task.metric_name:>11} "
            f"{'weights kbit':>12} {'vs fp32':>8} {'rms err':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        kbit = "" if r["weight_kbit"] is None else f"{r['weight_kbit']:.1f}"
        lines.append(f"{r['scheme']:<11} {r['weight_bits']:>6} {r['act_bits']:>6} "
                     f"{r['metric']:>11.3f} {kbit:>12} {100 * r['reduction']:>7.1f}% "
                     f"{r['rms_error']:>8.4f}")
    for r in rows:  # a model with an embedding: its input side built both ways, per width
        e = r.get("embedding")
        if e and r["scheme"] == "calibrated":
            rom, folded = (" (built)", "") if e["design"] == "token_rom" else ("", " (built)")
            lines.append(f"embedding {e['vocab_size']}x{e['embedding_dim']} at W{r['weight_bits']}"
                         f"/A{r['act_bits']}: token ROM {e['token_rom_bits']} bit (table "
                         f"{e['token_rom_table_bits']} + W_x {e['token_rom_wx_bits']}){rom}, "
                         f"folded W_x E {e['folded_bits']} bit{folded}")
    return "\n".join(lines)


def design_vectors(task: Task, qm: QModel, sequences: int) -> np.ndarray:
    """Integer test inputs for a design's testbench: the first `sequences` test sequences."""
    if not isinstance(sequences, (int, np.integer)) or not 1 <= sequences <= len(task.x_test):
        raise FlowError(f"sequences must be an integer in 1..{len(task.x_test)} (the test "
                        f"set of {task.name}), not {sequences!r}")
    return qm.quantize_inputs(task.x_test[:sequences])


def generate_design(task: Task, qm: QModel, out_dir, lanes: int, delta=None,
                    sequences: int = 100, units: int | None = None,
                    scale_step: int | None = None, weights: str = "rom",
                    balance_lanes: bool | None = None, early_passes: bool = True) -> Path:
    from .rtl.emit import generate
    return generate(qm, out_dir, lanes=lanes, delta=delta,
                    inputs=design_vectors(task, qm, sequences), layout=TASK_LAYOUT,
                    units=units, scale_step=scale_step, weights=weights,
                    balance_lanes=balance_lanes, early_passes=early_passes)


DESIGN_BITS = 8
DELTA_BUDGET = 1.0  # accuracy points (or bits/char) the bundled delta design may lose


def int_score(task: Task, qm: QModel):
    """Integer outputs of `qm` -> the task's score (higher is better), for the delta search."""
    return lambda y: task.score(qm.decode_outputs(y))


def bundled_designs(task: Task, lanes: int = DEFAULT_LANES) -> list[tuple]:
    """The designs `make demo` writes to rtl_out/: (name, qmodel, delta, chosen point).

    Dense at 8-bit weights and activations, and the same model as a delta network with
    thresholds chosen within DELTA_BUDGET of the dense metric on the test set.
    """
    from .delta import choose_thresholds
    qm = quantize(task, QuantConfig(weight_bits=DESIGN_BITS, act_bits=DESIGN_BITS))
    xq = qm.quantize_inputs(task.x_test)
    best, _ = choose_thresholds(qm, xq, int_score(task, qm), DELTA_BUDGET, layout=TASK_LAYOUT)
    base = f"{task.name}_p{lanes}"
    return [(base, qm, None, None), (f"{base}_delta", qm, best.thresholds, best)]


def write_json(path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


class Progress:
    """Prints a step with its elapsed time: `with Progress("simulate"): ...`."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream

    def __enter__(self):
        self.t0 = time.time()
        print(f"[hwgen] {self.label} ...", flush=True, file=self.stream)
        return self

    def __exit__(self, *exc):
        status = "failed" if exc[0] else "done"
        print(f"[hwgen] {self.label}: {status} in {time.time() - self.t0:.1f} s", flush=True,
              file=self.stream)
        return False


CELL_MODELS = ["digits_lstm", "digits_gru", "digits_ligru", "digits_sru"]


def cell_comparison_row(name: str, budget: float = DELTA_BUDGET) -> dict:
    """One bundled model, as a row of the cell comparison (see `format_cell_table`)."""
    from .delta import choose_thresholds
    from .rtl.cycles import cycle_model
    from .rtl.plan import make_plan
    task = load_task(name)
    out = {"model": name, "cell": task.ir.cell,
           "float": task.metric(run_float(task.ir, task.x_test, layout=TASK_LAYOUT))}
    for bits in (8, 4):
        qm = quantize(task, QuantConfig(weight_bits=bits, act_bits=8))
        out[f"q{bits}"] = task.metric(qm.decode_outputs(int_outputs(qm, task.x_test)))
        mem = qm.memory_bits()
        out[f"reduction{bits}"] = 1 - mem["weight_bits"] / mem["weight_bits_float32"]
        if bits == 8:
            out["kbit"] = mem["weight_bits"] / 1000
            xq = qm.quantize_inputs(task.x_test)
            best, _ = choose_thresholds(qm, xq, int_score(task, qm), budget,
                                        layout=TASK_LAYOUT)
            out["delta"], out["thresholds"] = best.macs_eliminated, best.thresholds
            out["delta_metric"] = abs(best.metric)
            for lanes in (2, 8):
                cyc = cycle_model(make_plan(qm, lanes), qm.input_size, qm.head_mode)
                out[f"cycles{lanes}"] = cyc["per_step"]
                out[f"util{lanes}"] = cyc["step_utilization"]
    return out


def format_cell_table(rows: list[dict]) -> str:
    """The cells side by side: float, 8/4-bit accuracy, weight memory and its cut against
    float32, the metric with delta thresholds and the MACs they eliminate, and the cycle
    model's cycles per step and step utilization at 2 and 8 lanes."""
    head = (f"{'cell':<6} {'float':>6} {'8-bit':>6} {'4-bit':>6} {'kbit@8':>7} {'cut@8':>6} "
            f"{'cut@4':>6} {'w/delta':>7} {'MACs elim':>9} {'cyc P=2':>8} {'util':>5} "
            f"{'cyc P=8':>8} {'util':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['cell']:<6} {r['float']:>6.2f} {r['q8']:>6.2f} {r['q4']:>6.2f} "
                     f"{r['kbit']:>7.1f} {100 * r['reduction8']:>5.1f}% "
                     f"{100 * r['reduction4']:>5.1f}% {r['delta_metric']:>7.2f} "
                     f"{100 * r['delta']:>8.1f}% {r['cycles2']:>8} {r['util2']:>5.2f} "
                     f"{r['cycles8']:>8} {r['util8']:>5.2f}")
    lines += [f"  {r['cell']}: delta thresholds {r['thresholds']}" for r in rows]
    return "\n".join(lines)
