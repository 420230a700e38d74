"""Quantization-aware fine-tuning to multi-level ternary (or binary) weights, with pruning.

From a bundled float model: every recurrent matrix is fake-quantized in the forward pass by
the residual fit of `hwgen.ternary.fit_levels` (the same arithmetic, scales rounded to their
formats), with a straight-through estimator: the gradient of the quantized weight goes to the
latent float weight. Gradual magnitude pruning (Zhu & Gupta's cubic schedule) raises each
matrix's sparsity (or the model's: `prune_all`) from 0 to the target over the first
`PRUNE_FRACTION` of the steps; a pruned weight is zero in the latent matrix and in every
level. With ``head`` the head's weight is fitted to levels (and pruned) the same way; else it
stays the 8-bit PTQ's. Inputs and the head's input (the last layer's hidden state) are
fake-quantized to the 8-bit PTQ formats; the state inside the recurrent module stays float
(the fused torch module), so the evaluation always runs the integer reference. Optionally the loss also
distils the float model's outputs (`distill`, `temperature`). Seeded and deterministic at a
given torch thread count (2 unless told).

`train` returns a `QATResult` (latent state_dict, masks, options); `evaluate` turns it into
a `TernaryModel` and the table row; `cmd_ternary` is ``hwgen ternary``.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import time

import numpy as np

from . import flow, ternary
from .quant import QuantConfig

EPOCHS = 30
LR = 5e-3
BATCH = 64
PRUNE_FRACTION = 0.6
THREADS = 2        # torch threads; a result is reproduced bit for bit at the same count
SCOPES = ("matrix", "model")   # pruning: each matrix to the target, or all of them together
TEMPERATURE = 1.0  # distillation: the softmax temperature of teacher and student
SHIPPED = Path(__file__).parent / "models" / "ternary"
#: The head's weight among a result's masks (the recurrent matrices are named within
#: ``model.rnn``, the head within the model)
HEAD = "head.weight"


@dataclass
class QATResult:
    """A fine-tuned model: latent weights (pruned ones zero), masks, and what made it."""

    model: str
    levels: int
    sparsity: float
    binary: bool
    state_dict: dict
    masks: dict        # matrix parameter name -> bool tensor (False: pruned)
    seconds: float = 0.0
    epochs: int = EPOCHS
    seed: int = 0
    threads: int = THREADS
    scope: str = "matrix"
    distill: float = 0.0   # weight of the distillation term (0: the labels only)
    temperature: float = TEMPERATURE
    lr: float = LR
    head: bool = False     # the head has levels too (and is pruned with the rest)
    head_sparsity: float | None = None   # the head pruned to this on its own (None: with the rest)

    @property
    def tag(self) -> str:
        """File stem, e.g. digits_gru_t2s80 (ternary, 2 levels, 80 %), digits_gru_b3, ``g``
        appended for pruning over the whole model (charlm_gru2_t2s80g), ``h`` when the head
        has levels too (charlm_gru2_t2s80gh; ``h<100 s>`` when it is pruned to s on its own:
        charlm_gru2_t2s80gh50), and ``e<epochs>``
        when not the default: digits_gru_t2s90e200; ``d<100 distill>`` when distilled from the
        float model (charlm_gru2_t2s80gd50), then ``T<temperature>`` when not the default, and
        ``lr<lr>`` for a learning rate other than the default (charlm_gru2_t2s80gd20lr0p01: a
        number's point is a ``p``, so that a tag stays a plain file stem)."""
        kind = f"b{self.levels}" if self.binary else \
            f"t{self.levels}s{round(100 * self.sparsity)}" + ("g" if self.scope == "model" else "")
        kind += "h" if self.head else ""
        kind += "" if self.head_sparsity is None else f"{round(100 * self.head_sparsity)}"
        kd = "" if not self.distill else f"d{round(100 * self.distill)}" + (
            f"T{_num(self.temperature)}" if self.temperature != TEMPERATURE else "")
        return f"{self.model}_{kind}{kd}" + (f"lr{_num(self.lr)}" if self.lr != LR else "") + \
            (f"e{self.epochs}" if self.epochs != EPOCHS else "")


def _num(x: float) -> str:
    """A number in a tag: 0.01 -> 0p01, 4.0 -> 4."""
    return f"{x:g}".replace(".", "p")


def result_tag(model: str, levels: int, sparsity: float, binary: bool,
               epochs: int = EPOCHS, scope: str = "matrix", distill: float = 0.0,
               temperature: float = TEMPERATURE, lr: float = LR, head: bool = False,
               head_sparsity: float | None = None) -> str:
    return QATResult(model, levels, sparsity, binary, {}, {}, epochs=epochs, scope=scope,
                     distill=distill, temperature=temperature, lr=lr, head=head,
                     head_sparsity=head_sparsity).tag


def check_options(levels, sparsity, binary, scope: str = "matrix", distill: float = 0.0,
                  temperature: float = TEMPERATURE, lr: float = LR, head: bool = False,
                  head_sparsity: float | None = None) -> None:
    """TernaryError for options out of range, before any work."""
    if not isinstance(levels, (int, np.integer)) or not 1 <= levels <= 4:
        raise ternary.TernaryError(f"levels must be an integer in 1..4, not {levels!r}")
    if not 0 <= sparsity < 1:
        raise ternary.TernaryError(f"sparsity must be in [0, 1), not {sparsity!r}")
    if binary and sparsity:
        raise ternary.TernaryError("binary levels cannot hold a zero: use --sparsity 0")
    if scope not in SCOPES:
        raise ternary.TernaryError(f"pruning scope must be one of {SCOPES}, not {scope!r}")
    if scope == "model" and not sparsity:
        raise ternary.TernaryError("--global-pruning needs a sparsity above 0")
    if not 0 <= distill < 1:
        raise ternary.TernaryError(f"distill must be in [0, 1), not {distill!r}")
    if not 0 < temperature < float("inf"):
        raise ternary.TernaryError(f"temperature must be a finite number above 0, "
                                   f"not {temperature!r}")
    if temperature != TEMPERATURE and not distill:
        raise ternary.TernaryError("--temperature needs --distill above 0")
    if not 0 < lr < float("inf"):
        raise ternary.TernaryError(f"learning rate must be a finite number above 0, not {lr!r}")
    if head_sparsity is not None:
        if not head:
            raise ternary.TernaryError("a head sparsity is for a head with levels (--head)")
        if binary:
            raise ternary.TernaryError("binary levels cannot hold a zero: no head sparsity")
        if not 0 <= head_sparsity < 1:
            raise ternary.TernaryError(f"head sparsity must be in [0, 1), not "
                                       f"{head_sparsity!r}")


# ---------------------------------------------------------------- torch side
def trained_matrices(model, ir) -> list:
    """The recurrent matrices fine-tuning ternarizes, per layer (input, recurrent)
    `hwgen.cells.base.TrainedMatrix` (None: the cell has no such matrix), their rows
    checked against the IR's; TernaryError where they are not its rows."""
    pairs = ir.spec.trained_matrices(model.rnn)
    if len(pairs) != len(ir.layers):
        raise ternary.TernaryError(f"cell {ir.cell}: {len(pairs)} layers of torch matrices "
                                   f"for the IR's {len(ir.layers)}")
    params = dict(model.rnn.named_parameters())
    for layer, pair in zip(ir.layers, pairs):
        for w, t in zip((layer.w_ih, layer.w_hh), pair):
            fixed = 0 if t is None or t.fixed is None else len(t.fixed)
            rows = (0,) + w.shape[1:] if t is None else tuple(t.rows(params[t.name]).shape)
            if (rows[0] + fixed,) + rows[1:] != w.shape:
                raise ternary.TernaryError(f"cell {ir.cell}: its torch matrices are not laid "
                                           f"out as the IR's rows; ternary training is not "
                                           f"supported for it")
    return pairs


def matrix_names(model, ir) -> list[str]:
    """Names (within ``model.rnn``) of the trained matrices, in IR order."""
    return [t.name for pair in trained_matrices(model, ir) for t in pair if t is not None]


def prunable(model, ir, head: bool) -> tuple[dict, dict]:
    """The model's parameters by name (the recurrent module's, and with `head` the head's
    weight as `HEAD`) and a keep-all mask for each matrix that is fitted and pruned."""
    import torch
    params = dict(model.rnn.named_parameters())
    names = matrix_names(model, ir)
    if head:
        params[HEAD] = model.head.weight
        names.append(HEAD)
    return params, {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}


def check_model(task) -> None:
    """TernaryError, before any training, for a model whose matrices cannot be ternarized."""
    from .models import load_model
    if task.ir.embedding is not None:  # its training forward takes features, not token ids
        raise ternary.TernaryError(f"{task.name}: ternary fine-tuning of a model with an "
                                   f"nn.Embedding is not supported yet")
    matrix_names(load_model(task.name)[0], task.ir)


def _fake_round(x, frac: int, lo: int, hi: int):
    """Round half up to `frac` bits and saturate, with a straight-through gradient."""
    import torch
    q = torch.clamp(torch.floor(x * 2.0 ** frac + 0.5), lo, hi) * 2.0 ** -frac
    return x + (q - x).detach()


def fake_levels(w, mask, levels: int, binary: bool, alpha_bits: int = ternary.ALPHA_BITS):
    """Σ α_i T_i of `w` as `ternary.fit_levels` computes it, straight-through to `w`."""
    import torch
    with torch.no_grad():
        keep = torch.ones_like(w, dtype=torch.bool) if binary else mask
        resid = torch.where(keep, w, torch.zeros_like(w)).double()
        count = keep.sum(1).clamp(min=1)
        out = torch.zeros_like(resid)
        for _ in range(levels):
            mag = resid.abs()
            if binary:
                t = torch.where(resid >= 0, 1.0, -1.0).double()
                a = mag.mean(1)
            else:
                thresh = ternary.DELTA * mag.sum(1) / count
                t = torch.sign(resid) * (mag > thresh[:, None])
                nz = t.abs().sum(1)
                a = torch.where(nz > 0, (mag * t.abs()).sum(1) / nz.clamp(min=1), 0.0)
            fmt = ternary.alpha_format(a.numpy())
            a = torch.clamp(torch.floor(a * 2.0 ** fmt.frac + 0.5), fmt.min_int, fmt.max_int) \
                * 2.0 ** -fmt.frac
            step = a[:, None] * t
            out += step
            resid = resid - step
    wm = w * keep
    return wm + (out.to(w.dtype) - wm).detach()


def cubic_sparsity(step: int, steps: int, target: float) -> float:
    """Zhu & Gupta's gradual pruning: s = target (1 - (1 - step / steps)^3), then target."""
    if step >= steps:
        return target
    return target * (1.0 - (1.0 - step / steps) ** 3)


def prune(w, mask, sparsity: float):
    """The mask with exactly round(sparsity n) of `w`'s smallest magnitudes pruned (already
    pruned weights stay pruned: they are zero, the smallest)."""
    import torch
    k = int(round(sparsity * w.numel()))
    key = torch.where(mask, w.abs(), torch.full_like(w, -1.0))
    order = torch.argsort(key.flatten(), stable=True)
    new = torch.ones(w.numel(), dtype=torch.bool)
    new[order[:k]] = False
    return new.reshape(w.shape) & mask if k >= int((~mask).sum()) else mask


def prune_all(params: dict, masks: dict, sparsity: float, scope: str = "matrix") -> dict:
    """New masks of the matrices `masks` names: each pruned to `sparsity` ("matrix"), or
    round(sparsity N) of all N weights together, the smallest magnitudes wherever they are
    ("model": a matrix that matters more keeps more)."""
    import torch
    if scope == "matrix":
        return {n: prune(params[n], m, sparsity) for n, m in masks.items()}
    flat = prune(torch.cat([params[n].flatten() for n in masks]),
                 torch.cat([m.flatten() for m in masks.values()]), sparsity)
    return dict(zip(masks, (p.reshape(m.shape) for p, m in zip(
        flat.split([m.numel() for m in masks.values()]), masks.values()))))


def _act_formats(task):
    """Input and head-input formats of the model's 8-bit PTQ."""
    qm = flow.quantize(task, QuantConfig(weight_bits=8, act_bits=8))
    return qm.input_fmt, qm.head.in_fmt


def _forward(model, mats, masks, x, levels, binary, fmts):
    """The model's outputs with each trained matrix of `mats` (name -> TrainedMatrix) as
    its levels, fitted on the IR's rows, and the head's weight as its levels where `masks`
    has the head's (`HEAD`)."""
    import torch
    params = {n: t.unrows(fake_levels(t.rows(p), t.rows(masks[n]), levels, binary))
              for n, p in model.rnn.named_parameters() if (t := mats.get(n)) is not None}
    x_fmt, h_fmt = fmts
    x = _fake_round(x, x_fmt.frac, x_fmt.min_int, x_fmt.max_int)
    y, _ = torch.func.functional_call(model.rnn, params, (x,))
    if model.head_mode == "last":
        y = y[:, -1]
    y = _fake_round(y, h_fmt.frac, h_fmt.min_int, h_fmt.max_int)
    if HEAD not in masks:
        return model.head(y)
    w = fake_levels(model.head.weight, masks[HEAD], levels, binary)
    return torch.nn.functional.linear(y, w, model.head.bias)


def teacher_logits(name: str, x, batch: int = 256):
    """The bundled float model's outputs on `x` (a tensor), computed once for distillation."""
    import torch

    from .models import load_model
    teacher, _ = load_model(name)
    teacher.eval()
    with torch.no_grad():
        return torch.cat([teacher(xb) for xb in x.split(batch)])


def distill_step(model, opt, out, target, soft, distill: float, temperature: float) -> None:
    """`train.optimizer_step` with the loss (1 - w) CE(labels) + w T² KL(teacher_T ‖
    student_T): Hinton's distillation, both softmaxes at temperature T, `soft` the teacher's
    logits."""
    import torch
    from torch import nn

    from .train import loss_step
    v = out.shape[-1]
    ce = nn.functional.cross_entropy(out.reshape(-1, v), target.reshape(-1))
    kl = nn.functional.kl_div(
        torch.log_softmax(out.reshape(-1, v) / temperature, -1),
        torch.log_softmax(soft.reshape(-1, v) / temperature, -1),
        reduction="batchmean", log_target=True) * temperature ** 2
    loss_step(model, opt, (1 - distill) * ce + distill * kl)


def train(task, levels: int = 2, sparsity: float = 0.8, binary: bool = False,
          epochs: int = EPOCHS, seed: int = 0, lr: float = LR, max_batches: int | None = None,
          threads: int = THREADS, scope: str = "matrix", distill: float = 0.0,
          temperature: float = TEMPERATURE, head: bool = False,
          head_sparsity: float | None = None) -> QATResult:
    """Fine-tune a bundled model's float weights to L ternary (or binary) levels.

    Parameters
    ----------
    task : `hwgen.flow.Task` of a bundled model.
    levels, sparsity, binary : L, the pruning target per matrix, binary levels (no pruning).
    epochs, seed, lr : Adam with cosine decay, batch 64, gradient norm clipped to 1.
    max_batches : stop each epoch after this many batches (tests).
    threads : torch threads (the same seed and count give the same weights).
    scope : prune each matrix to `sparsity` ("matrix") or the model's weights together
        ("model"; the sparsity of each matrix is then what the magnitudes make it).
    distill, temperature : weight w of the distillation term against the bundled float
        model's outputs at temperature T (`distill_step`); 0: the labels only, as before.
    head : the head's weight gets levels too, and is pruned with the recurrent matrices.
    head_sparsity : the head pruned to this on its own instead (the same schedule).

    Returns
    -------
    QATResult
    """
    from .train import torch_threads
    check_options(levels, sparsity, binary, scope, distill, temperature, lr, head,
                  head_sparsity)
    with torch_threads(threads):   # the weights depend on the thread count; restored after
        return _fine_tune(task, levels, sparsity, binary, epochs, seed, lr, max_batches,
                          threads, scope, distill, temperature, head, head_sparsity)


def prune_step(params: dict, masks: dict, sparsity: float, scope: str = "matrix",
               head_sparsity: float | None = None) -> dict:
    """`prune_all` to `sparsity`, but the head's weight (`HEAD`) to `head_sparsity` on its
    own when that is given."""
    if head_sparsity is None or HEAD not in masks:
        return prune_all(params, masks, sparsity, scope)
    new = prune_all(params, {n: m for n, m in masks.items() if n != HEAD}, sparsity, scope)
    new[HEAD] = prune(params[HEAD], masks[HEAD], head_sparsity)
    return new


def _fine_tune(task, levels, sparsity, binary, epochs, seed, lr, max_batches, threads, scope,
               distill, temperature, head, head_sparsity) -> QATResult:
    import torch

    from .models import load_model, load_task_data
    from .train import optimizer_step
    t0 = time.time()
    torch.manual_seed(seed)
    model, meta = load_model(task.name)
    mats = {t.name: t for pair in trained_matrices(model, task.ir) for t in pair if t}
    params, masks = prunable(model, task.ir, head)
    names = list(masks)
    fmts = _act_formats(task)
    x, y = load_task_data(meta, "train")
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y))
    soft = teacher_logits(task.name, xt) if distill else None
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    per_epoch = -(-len(xt) // BATCH) if max_batches is None else max_batches
    prune_steps, step = max(1, int(PRUNE_FRACTION * epochs * per_epoch)), 0
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(BATCH)[:per_epoch]:
            if (sparsity or head_sparsity) and step <= prune_steps:
                s = cubic_sparsity(step, prune_steps, sparsity)
                hs = None if head_sparsity is None else \
                    cubic_sparsity(step, prune_steps, head_sparsity)
                with torch.no_grad():
                    masks = prune_step(params, masks, s, scope, hs)
                    for n in names:
                        params[n].mul_(masks[n])
            out = _forward(model, mats, masks, xt[idx], levels, binary, fmts)
            if distill:
                distill_step(model, opt, out, yt[idx], soft[idx], distill, temperature)
            else:
                optimizer_step(model, opt, out, yt[idx])
            with torch.no_grad():
                for n in names:
                    params[n].mul_(masks[n])
            step += 1
        sched.step()
    model.eval()
    return QATResult(task.name, levels, sparsity, binary,
                     {k: v.detach().clone() for k, v in model.state_dict().items()},
                     masks, round(time.time() - t0, 1), epochs, seed, threads, scope,
                     distill, temperature, lr, head, head_sparsity)


def _masks_ir(result: QATResult, model, ir) -> list:
    """Per layer (mask_ih, mask_hh) in the IR's rows (fixed rows: kept where nonzero; no
    matrix: an empty mask)."""
    import torch

    def ir_mask(t, w):
        if t is None:
            return np.ones(w.shape, bool)
        m = t.rows(torch.as_tensor(result.masks[t.name])).numpy()
        return m if t.fixed is None else np.concatenate([m, t.fixed != 0])
    return [(ir_mask(tx, layer.w_ih), ir_mask(th, layer.w_hh))
            for layer, (tx, th) in zip(ir.layers, trained_matrices(model, ir))]


def to_ternary(task, result: QATResult) -> ternary.TernaryModel:
    """The integer ternary model of a fine-tuned result (fit on its latent weights)."""
    from .frontend import from_torch
    from .models import load_model
    model, _ = load_model(task.name)
    model.load_state_dict(result.state_dict)
    ir = from_torch(model)
    head_mask = result.masks[HEAD].numpy() if result.head else None
    return ternary.ternarize(ir, task.x_calib, result.levels, result.binary,
                             _masks_ir(result, model, ir), layout=flow.TASK_LAYOUT,
                             head=result.head, head_mask=head_mask)


def post_training(task, levels: int, sparsity: float = 0.0, binary: bool = False,
                  head: bool = False, head_sparsity: float | None = None
                  ) -> ternary.TernaryModel:
    """Ternarize the float model without training: one-shot magnitude pruning (of each
    matrix, the head's too when it gets levels), then the fit."""
    import torch

    from .models import load_model
    check_options(levels, sparsity, binary, head=head, head_sparsity=head_sparsity)
    model, _ = load_model(task.name)
    params, masks = prunable(model, task.ir, head)
    with torch.no_grad():
        masks = prune_step(params, masks, sparsity, head_sparsity=head_sparsity)
        for n, m in masks.items():
            params[n].mul_(m)
    result = QATResult(task.name, levels, sparsity, binary, model.state_dict(), masks,
                       head=head, head_sparsity=head_sparsity)
    return to_ternary(task, result)


def int_metric(task, qm) -> float:
    """The task's metric of the integer reference's outputs on the test split."""
    return task.metric(qm.decode_outputs(flow.int_outputs(qm, task.x_test)))


def row(task, tm: ternary.TernaryModel, label: str) -> dict:
    """A table row: metric through the integer reference, weight bits, sparsity, ops."""
    mem, ops = ternary.memory_report(tm), ternary.op_counts(tm)
    return {"label": label, "metric": int_metric(task, tm.qm),
            "weight_kbit": mem["weight_bits"] / 1000, "matrix_kbit": mem["matrix_bits"] / 1000,
            "forms": sorted({m["form"] for m in mem["matrices"].values()}),
            "pruned": dict(tm.pruned), "word_speedup": ops["word_speedup"],
            "bit_speedup": ops["bit_speedup"]}


def baseline_rows(task) -> list[dict]:
    """Float and 8-/4-bit PTQ rows (8-bit activations), for the table's top."""
    from .ref import run_float
    rows = [{"label": "float32", "metric": task.metric(run_float(task.ir, task.x_test,
                                                                 layout=flow.TASK_LAYOUT)),
             "weight_kbit": None}]
    for bits in (8, 4):
        qm = flow.quantize(task, QuantConfig(weight_bits=bits, act_bits=8))
        mem = qm.memory_bits()
        rows.append({"label": f"PTQ {bits}-bit", "metric": int_metric(task, qm),
                     "weight_kbit": mem["weight_bits"] / 1000,
                     "matrix_kbit": sum(sum(n * f.width for n, f in zip(
                         ql.weight_count(), (ql.wx_fmt, ql.wh_fmt))) for ql in qm.layers) / 1000})
    rows[0]["weight_kbit"] = qm.memory_bits()["weight_bits_float32"] / 1000
    return rows


def format_table(task, rows: list[dict]) -> str:
    """The rows as the bench prints them (bits per character to 3 places: the aim is 0.05)."""
    places = 3 if task.kind == "lm" else 2
    pruned = ["/".join(f"{100 * v:.0f}" for v in r["pruned"].values()) if "pruned" in r else ""
              for r in rows]
    pw = max([8] + [len(p) for p in pruned])   # one figure per matrix: 4 in a 2-layer model
    head = (f"{'weights':<18} {task.metric_name:>11} {'weight kbit':>11} {'matrix kbit':>11} "
            f"{'pruned %':>{pw}} {'word x':>7} {'bit x':>7}")
    lines = [head, "-" * len(head)]
    for r, pr in zip(rows, pruned):
        kbit = "" if r.get("weight_kbit") is None else f"{r['weight_kbit']:.2f}"
        mk = "" if r.get("matrix_kbit") is None else f"{r['matrix_kbit']:.2f}"
        sp = "" if "word_speedup" not in r else \
            f"{r['word_speedup']:>7.2f} {r['bit_speedup']:>7.2f}"
        lines.append(f"{r['label']:<18} {r['metric']:>11.{places}f} {kbit:>11} {mk:>11} "
                     f"{pr:>{pw}} {sp}")
    return "\n".join(lines)


# ---------------------------------------------------------------- cache files
def save(result: QATResult, folder) -> Path:
    """Write ``<tag>.pt`` (latent state_dict and masks, `pack`ed) and ``<tag>.json`` in
    `folder` (the distillation options only when used, the learning rate only when not the
    default)."""
    import torch
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.tag}.pt"
    tmp = path.with_suffix(".pt.tmp")
    torch.save(pack(result.state_dict, result.masks), tmp)
    tmp.replace(path)
    meta = {k: getattr(result, k) for k in ("model", "levels", "sparsity", "binary", "seconds",
                                            "epochs", "seed", "threads", "scope")}
    if result.distill:
        meta.update(distill=result.distill, temperature=result.temperature)
    if result.lr != LR:
        meta.update(lr=result.lr)
    if result.head:
        meta.update(head=True)
    if result.head_sparsity is not None:
        meta.update(head_sparsity=result.head_sparsity)
    (folder / f"{result.tag}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def pack(state_dict: dict, masks: dict) -> dict:
    """A result's file contents: each masked matrix as the values it keeps (its pruned
    weights are zero) and its mask as bits, the rest of the state_dict as it is
    (charlm_gru2_t2s80g in 22 kB instead of 72). `unpack` gives back equal tensors (a
    pruned zero comes back as +0.0)."""
    import torch
    matrices = {_state_key(n) for n in masks}
    rest = {k: v for k, v in state_dict.items() if k not in matrices}
    kept = {n: {"values": state_dict[_state_key(n)][m].clone(), "shape": list(m.shape),
                "bits": torch.from_numpy(np.packbits(m.numpy().ravel()))}
            for n, m in masks.items()}
    return {"state_dict": rest, "kept": kept, "order": list(state_dict)}


def _state_key(name: str) -> str:
    """A masked matrix's key in the model's state_dict."""
    return name if name == HEAD else f"rnn.{name}"


def unpack(blob: dict) -> tuple[dict, dict]:
    """(state_dict, masks) of a result's file: `pack`'s form, or the older one that holds
    them as they are (the results shipped before it)."""
    import torch
    if "kept" not in blob:
        return blob["state_dict"], blob["masks"]
    full, masks = dict(blob["state_dict"]), {}
    for n, k in blob["kept"].items():
        shape = tuple(k["shape"])
        masks[n] = torch.from_numpy(np.unpackbits(k["bits"].numpy(), count=int(np.prod(shape)))
                                    .astype(bool).reshape(shape))
        full[_state_key(n)] = torch.zeros(shape, dtype=k["values"].dtype).masked_scatter(
            masks[n], k["values"])
    return {key: full[key] for key in blob["order"]}, masks


def load(folder, tag: str) -> QATResult | None:
    """The cached result `tag` in `folder`, or None."""
    import torch
    folder = Path(folder)
    if not (folder / f"{tag}.pt").exists() or not (folder / f"{tag}.json").exists():
        return None
    meta = json.loads((folder / f"{tag}.json").read_text())
    state_dict, masks = unpack(torch.load(folder / f"{tag}.pt", weights_only=True))
    return QATResult(meta["model"], meta["levels"], meta["sparsity"], meta["binary"],
                     state_dict, masks, meta.get("seconds", 0.0),
                     meta.get("epochs", EPOCHS), meta.get("seed", 0),
                     meta.get("threads", THREADS), meta.get("scope", "matrix"),
                     meta.get("distill", 0.0), meta.get("temperature", TEMPERATURE),
                     meta.get("lr", LR), meta.get("head", False),
                     meta.get("head_sparsity"))


def train_or_load(task, levels, sparsity, binary, out=None, epochs: int = EPOCHS,
                  seed: int = 0, log=None, threads: int = THREADS, scope: str = "matrix",
                  distill: float = 0.0, temperature: float = TEMPERATURE, lr: float = LR,
                  head: bool = False, head_sparsity: float | None = None) -> QATResult:
    """A cached result (shipped, then `out`) with these options, else train (and cache in
    `out` when given)."""
    tag = result_tag(task.name, levels, sparsity, binary, epochs, scope, distill, temperature,
                     lr, head, head_sparsity)
    for folder in (SHIPPED, out):
        if folder is not None:
            result = load(folder, tag)
            if result is not None and (result.epochs, result.seed, result.distill,
                                       result.temperature, result.lr) == (
                    epochs, seed, distill, temperature, lr):
                return result
    if log:
        log(f"training {tag} ({epochs} epochs)...")
    result = train(task, levels, sparsity, binary, epochs, seed, lr, threads=threads,
                   scope=scope, distill=distill, temperature=temperature, head=head,
                   head_sparsity=head_sparsity)
    if out is not None:
        save(result, out)
    return result


def shipped_tags(model: str | None = None) -> list[str]:
    """Names of the shipped ternary results (e.g. digits_gru_t2s80), sorted; of `model`'s
    only, when given."""
    return sorted(p.stem for p in SHIPPED.glob("*.json")
                  if model is None or json.loads(p.read_text())["model"] == model)


def shipped_ternary(name: str):
    """(task, TernaryModel) of the shipped result `name`, or None when it is not one."""
    if name not in shipped_tags():
        return None
    meta = json.loads((SHIPPED / f"{name}.json").read_text())
    task = flow.load_task(meta["model"])
    tm = to_ternary(task, load(SHIPPED, name))
    tm.qm.meta["task"] = task.name
    tm.qm.meta["ternary"]["result"] = name
    return task, tm


# ---------------------------------------------------------------- command line
def add_parser(sub, int_in, probability) -> None:
    """Register ``hwgen ternary`` on the CLI's subparsers (`int_in(text, high)` and
    `probability(text)` are its argument types)."""
    sp = sub.add_parser("ternary", help="multi-level ternary weights with pruning (QAT)")
    sp.add_argument("model", nargs="?", default="digits_gru",
                    help="bundled model name (default digits_gru; see `hwgen list`)")
    sp.add_argument("--levels", type=lambda t: int_in(t, 4), default=2,
                    help="ternary (or binary) levels L, 1..4 (default 2)")
    sp.add_argument("--sparsity", type=probability, default=0.8,
                    help="fraction of each matrix (with --global-pruning: of all of them) "
                         "pruned, in [0, 1) (default 0.8)")
    sp.add_argument("--binary", action="store_true", help="binary levels, no pruning")
    sp.add_argument("--global-pruning", action="store_true",
                    help="prune the model's matrices together to --sparsity (the smallest "
                         "weights wherever they are), not each matrix to it")
    sp.add_argument("--head", action="store_true",
                    help="the head's weights get levels too (pruned with the rest); "
                         "default: the head keeps 8-bit PTQ weights")
    sp.add_argument("--head-sparsity", type=probability, metavar="S",
                    help="with --head: prune the head to S on its own, not with the rest")
    sp.add_argument("--distill", type=probability, default=0.0, metavar="W",
                    help="weight of distillation from the float model's outputs (loss "
                         "(1 - W) CE + W T² KL), in [0, 1) (default 0: the labels only)")
    sp.add_argument("--temperature", type=float, default=TEMPERATURE, metavar="T",
                    help=f"softmax temperature of the distillation (default {TEMPERATURE:g})")
    sp.add_argument("--lr", type=float, default=LR,
                    help=f"Adam's learning rate, cosine-decayed (default {LR:g})")
    sp.add_argument("--epochs", type=int_in, default=EPOCHS)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--threads", type=int_in, default=THREADS,
                    help=f"torch threads when training (default {THREADS}; the same seed and "
                         f"threads give the same weights)")
    sp.add_argument("--out", default="ternary_out", help="cache folder of trained results")
    sp.add_argument("--plot", metavar="FILE.png",
                    help="also draw the metric against sparsity of the cached results")
    sp.set_defaults(func=cmd_ternary)


def cmd_ternary(args) -> int:
    """``hwgen ternary``: train or load, print the table row (and the baselines)."""
    scope = "model" if args.global_pruning else "matrix"
    check_options(args.levels, args.sparsity, args.binary, scope, args.distill, args.temperature,
                  args.lr, args.head, args.head_sparsity)
    if args.plot:
        from .plots import check_figure_path
        check_figure_path(args.plot)
    task = flow.load_task(args.model)
    check_model(task)
    result = train_or_load(task, args.levels, args.sparsity, args.binary, args.out,
                           args.epochs, args.seed, log=lambda m: print(m, flush=True),
                           threads=args.threads, scope=scope, distill=args.distill,
                           temperature=args.temperature, lr=args.lr, head=args.head,
                           head_sparsity=args.head_sparsity)
    label = result.tag[len(task.name) + 1:]
    rows = baseline_rows(task) + [row(task, to_ternary(task, result), label)]
    print(f"{task.name}: {task.ir.describe()}")
    print(format_table(task, rows))
    if args.plot:
        _plot(task, args, rows, scope)
        print(f"figure: {args.plot}")
    return 0


def _plot(task, args, rows, scope: str) -> None:
    """Metric against sparsity: every cached ternary result at these levels, binary lines."""
    from .plots import _save, plt
    points = []
    for folder in (SHIPPED, Path(args.out)):
        for pct in range(0, 100):
            r = load(folder, result_tag(task.name, args.levels, pct / 100, False,
                                        scope=scope, head=args.head,
                                        head_sparsity=args.head_sparsity))
            if r is not None and pct not in [p for p, _ in points]:
                points.append((pct, int_metric(task, to_ternary(task, r).qm)))
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    points.sort()
    ax.plot([p for p, _ in points], [m for _, m in points], "o-",
            label=f"ternary L={args.levels}")
    for folder in (SHIPPED, Path(args.out)):
        r = load(folder, result_tag(task.name, args.levels, 0.0, True))
        if r is not None:
            ax.axhline(int_metric(task, to_ternary(task, r).qm), ls="--", color="C1",
                       label=f"binary L={args.levels}")
            break
    ax.axhline(rows[0]["metric"], ls=":", color="k", label="float32")
    ax.set_xlabel("pruned %")
    ax.set_ylabel(task.metric_name)
    ax.set_title(f"{task.name}: ternary weights against sparsity")
    ax.legend(fontsize=8)
    _save(fig, args.plot)
