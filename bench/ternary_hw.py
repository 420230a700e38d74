"""The multiplier-free ternary datapath against the 8-bit multiplier design (issue 12 §3-4).

    python bench/ternary_hw.py [--models digits_gru charlm_gru2] [--lanes 4 8 16]
                               [--scale-step N] [--no-balance-lanes] [--synth DIR ...]

Cycles per step (the cycle model, which the tests hold equal to simulation) of each model's
shipped ternary results against its 8-bit PTQ design at the same lanes, with the stored
words per step (nonzero per-lane digits) against the dense level-words, and the cycles of
one head (once a sequence, or, for a model whose head runs every step, the char LM, on every
step: counted in its cycles per step). The ternary designs' lanes are balanced, as
``hwgen generate`` builds them (``--no-balance-lanes``: the model's order); ``--head``
gives the pruning table's one-shot models levels in their heads too. ``--synth``
prints the synthesis reports already made under each design folder's build/synth/ by
``hwgen synth DIR --target ice40-up5k`` / ``ecp5-85f`` (LUT, FF, DSP, BRAM, Fmax, fits), and
what uses the iCE40's block RAMs: the SB_RAM40_4K cells of each memory in the netlist.
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)

from hwgen import flow, qat
from hwgen.quant import QuantConfig
from hwgen.rtl.cycles import cycle_model, ternary_cycle_model
from hwgen.rtl.lane_balance import design_model
from hwgen.rtl.plan import make_plan
from hwgen.rtl.ternary_plan import make_ternary_plan

MODELS = ["digits_gru"]


def cycle_rows(model, lanes_list, scale_step=None, balance_lanes=True) -> list[str]:
    task = flow.load_task(model)
    qm8 = flow.quantize(task, QuantConfig(weight_bits=8, act_bits=8))
    ternary = [(tag, qat.shipped_ternary(tag)[1].qm) for tag in qat.shipped_tags(model)]
    w = max([22] + [len(tag) for tag, _ in ternary])   # the design column fits every tag
    head = (f"{'design':<{w}} {'lanes':>5} {'cycles/step':>11} {'vs 8-bit':>8} "
            f"{'words/step':>10} {'dense':>6} {'head':>6}")
    lines = [head, "-" * len(head)]
    for lanes in lanes_list:
        plan = make_plan(qm8, lanes)
        base = cycle_model(plan, qm8.input_size, qm8.head_mode)
        lines.append(f"{model + ' 8-bit':<{w}} {lanes:>5} {base['model_per_step']:>11} {'1.00':>8} "
                     f"{sum(lp.matrix_cycles for lp in plan.layers):>10} {'':>6} "
                     f"{base['head']:>6}")
        for tag, qm in ternary:
            qm = design_model(qm, lanes, balance_lanes)[0]
            plan = make_plan(qm, lanes)
            c = ternary_cycle_model(plan, make_ternary_plan(qm, plan, scale_step),
                                    qm.input_size, qm.head_mode)
            lines.append(f"{tag:<{w}} {lanes:>5} {c['model_per_step']:>11} "
                         f"{base['model_per_step'] / c['model_per_step']:>8.2f} "
                         f"{c['stored_words_per_step']:>10} {c['dense_words_per_step']:>6} "
                         f"{c['head']:>6}")
    return lines


def sparsity_rows(model, lanes_list, levels=2, sparsities=(0.0, 0.5, 0.8, 0.9),
                  scale_step=None, balance_lanes=True, head_levels=False) -> list[str]:
    """Cycles per step against pruning: the float model ternarized after training (one-shot
    magnitude pruning, `qat.post_training`: the sparsity is exact, the accuracy is not
    the fine-tuned one; with `head_levels`, the head gets levels too and is pruned as
    well). `cut`: the fraction of cycles cut from the first sparsity to the last over the
    fraction of stored words cut (the operations the lanes can skip; a step's,
    the head's with them where it runs every step), the issue's "cycles falling with
    sparsity at >= 0.9 of the operation cut"."""
    task = flow.load_task(model)
    head = (f"{'lanes':>5} " + " ".join(f"{f's{round(100 * s)}':>11}" for s in sparsities)
            + f" {'cut':>6}")
    what = "head with levels, " if head_levels else ""
    lines = [f"{model}: cycles per step, t{levels} one-shot pruned ({what}stored words per step)",
             head, "-" * len(head)]
    models = [qat.post_training(task, levels, s, head=head_levels).qm for s in sparsities]
    for lanes in lanes_list:
        cells, runs = [], []
        for qm in models:
            qm = design_model(qm, lanes, balance_lanes)[0]
            plan = make_plan(qm, lanes)
            c = ternary_cycle_model(plan, make_ternary_plan(qm, plan, scale_step),
                                    qm.input_size, qm.head_mode)
            runs.append((c["model_per_step"], c["model_stored_words_per_step"]))
            cells.append(f"{c['model_per_step']:>5}/{c['model_stored_words_per_step']:<5}")
        (c0, w0), (c1, w1) = runs[0], runs[-1]
        cut = (1 - c1 / c0) / (1 - w1 / w0)
        lines.append(f"{lanes:>5} " + " ".join(f"{x:>11}" for x in cells) + f" {cut:>6.3f}")
    return lines


def synth_rows(folders) -> list[str]:
    head = (f"{'design':<26} {'target':<11} {'LUT':>6} {'FF':>6} {'DSP':>4} {'BRAM':>5} "
            f"{'Fmax MHz':>8} {'fits':>5}")
    lines = [head, "-" * len(head)]
    for folder in folders:
        for report in sorted(Path(f"{folder}.build", "synth").glob("*/report.json")):
            r = json.loads(report.read_text())
            res = r["resources"]
            used = {k: res[k]["placed"] or res[k]["used"] for k in ("LUT", "FF", "DSP", "BRAM")}
            fmax = "" if r.get("fmax_mhz") is None else f"{r['fmax_mhz']:.1f}"
            fits = "yes" if r["fits"] else "NO"
            if not r["fits"] and r.get("overflow"):
                o = r["overflow"][0]
                fits += f" ({o['resource']} {o['used']}>{o['available']})" \
                    if o.get("used") else " (placement failed)"
            lines.append(f"{r['design']:<26} {r['target']:<11} {used['LUT']:>6} {used['FF']:>6} "
                         f"{used['DSP']:>4} {used['BRAM']:>5} {fmax:>8} {fits}")
    return lines


def block_ram_use(netlist: Path) -> Counter:
    """SB_RAM40_4K cells per memory of an iCE40 netlist (Yosys names them memory.row.col;
    the lanes' level-sum memories s_mem0, s_mem1, ... are counted together)."""
    cells = Counter()
    for module in json.loads(netlist.read_text())["modules"].values():
        for name, cell in module.get("cells", {}).items():
            if cell["type"].startswith("SB_RAM40_4K"):
                memory = re.sub(r"(\.\d+)+$", "", name)
                cells[re.sub(r"s_mem\d+$", "s_mem*", memory)] += 1
    return cells


def block_ram_rows(folders) -> list[str]:
    lines = []
    for folder in folders:
        for netlist in sorted(Path(f"{folder}.build", "synth").glob("ice40*/netlist.json")):
            use = block_ram_use(netlist)
            lines.append(f"{Path(folder).name} ({netlist.parent.name}): {sum(use.values())} EBR: "
                         + ", ".join(f"{name} {n}" for name, n in sorted(use.items())))
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--lanes", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--scale-step", type=int,
                   help="the ternary combiner's scale bits a cycle (default: the generator's)")
    p.add_argument("--balance-lanes", action=argparse.BooleanOptionalAction, default=True,
                   help="the ternary designs with their units reordered for the lanes, as "
                        "hwgen generate makes them (the default), or in the model's order "
                        "(hwgen generate --no-balance-lanes)")
    p.add_argument("--head", action="store_true",
                   help="the pruning table's models have levels in their heads too")
    p.add_argument("--synth", nargs="*", default=[], metavar="DIR",
                   help="design folders whose synthesis reports to print")
    args = p.parse_args(argv)
    for model in args.models:
        print("\n".join(cycle_rows(model, args.lanes, args.scale_step, args.balance_lanes)))
        print()
        print("\n".join(sparsity_rows(model, args.lanes, scale_step=args.scale_step,
                                       balance_lanes=args.balance_lanes,
                                       head_levels=args.head)))
        print()
    if args.synth:
        print()
        print("\n".join(synth_rows(args.synth)))
        print("\n".join(block_ram_rows(args.synth)))


if __name__ == "__main__":
    main()
