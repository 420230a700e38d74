"""Multi-level ternary and binary weights against float and PTQ (issue 12 §4, software half).

    python bench/ternary.py [MODEL ...] [--shard i/n] [--quick]

For each model (default digits_gru; also digits_lstm, charlm_gru2): float; 8- and 4-bit PTQ;
multi-level binary L = 2, 3; multi-level ternary L = 1, 2, 3 at pruning 0 / 50 / 80 / 90 %
(30 epochs), and L = 2 at 90 % and 80 % with longer fine-tuning (200, 100 epochs; the char LM:
80 % at 100, and 70 / 80 / 90 % pruned over the whole model, ``g``). Metrics go through the integer
reference. Trained results are cached in bench/results/ternary/ (and the shipped ones in
hwgen/models/ternary/ are used); ``--shard i/n`` only trains every n-th run from the i-th (to
fill the cache from several processes), ``--quick`` only the 2-level runs and binary L=2,
``--cached`` trains nothing and prints the runs already cached; ``--threads`` sets torch's
threads (the char LM was trained on 1).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)

from hwgen import flow, qat

CACHE = Path(__file__).resolve().parent / "results" / "ternary"
GRID = ([(2, s, False) for s in (0.8, 0.9, 0.5, 0.0)] + [(2, 0.0, True), (3, 0.0, True)]
        + [(lv, s, False) for s in (0.8, 0.9, 0.5, 0.0) for lv in (3, 1)])


# runs beyond the grid, (levels, sparsity, epochs, pruning scope): longer fine-tuning where
# 30 epochs fall short; for the char LM (whose epochs take 6-8 s on one thread, the digits'
# under 1 s) 100 epochs at 80 %, and pruning over the whole model
EXTRA = {"default": [(2, 0.9, 200, "matrix"), (2, 0.8, 100, "matrix")],
         "charlm_gru2": [(2, 0.8, 100, "matrix")] + [(2, s, qat.EPOCHS, "model")
                                                     for s in (0.7, 0.8, 0.9)]}


def runs(quick: bool) -> list[tuple]:
    return [g for g in GRID if g[0] == 2] if quick else GRID


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=["digits_gru"])
    p.add_argument("--shard", default=None, help="i/n: train only these runs, print nothing")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cached", action="store_true", help="train nothing: print cached runs")
    p.add_argument("--threads", type=int, default=qat.THREADS, help="torch threads to train")
    args = p.parse_args(argv)
    for name in args.models:
        task = flow.load_task(name)
        grid, extra = runs(args.quick), EXTRA.get(name, EXTRA["default"])
        if args.shard:
            i, n = (int(v) for v in args.shard.split("/"))
            jobs = [g + (qat.EPOCHS, "matrix") for g in grid] + \
                [(lv, s, False, e, scope) for lv, s, e, scope in extra]
            for levels, sparsity, binary, epochs, scope in jobs[i::n]:
                r = qat.train_or_load(task, levels, sparsity, binary, CACHE, epochs, log=print,
                                      threads=args.threads, scope=scope)
                print(f"{r.tag}: {r.seconds} s", flush=True)
            continue
        rows, missing = qat.baseline_rows(task), []
        for levels, sparsity, binary in sorted(grid, key=lambda g: (not g[2], g[0], g[1])):
            tag = qat.result_tag(name, levels, sparsity, binary)
            r = qat.load(CACHE, tag) or qat.load(qat.SHIPPED, tag)
            if r is None and args.cached:
                missing.append(tag[len(name) + 1:])
                continue
            r = r or qat.train_or_load(task, levels, sparsity, binary, CACHE, log=print,
                                       threads=args.threads)
            rows.append(qat.row(task, qat.to_ternary(task, r), r.tag[len(name) + 1:]))
        for levels, sparsity, epochs, scope in extra:
            tag = qat.result_tag(name, levels, sparsity, False, epochs, scope)
            r = qat.load(CACHE, tag) or qat.load(qat.SHIPPED, tag)
            if r is None and args.cached:
                missing.append(tag[len(name) + 1:])
                continue
            r = r or qat.train_or_load(task, levels, sparsity, False, CACHE, epochs, log=print,
                                       threads=args.threads, scope=scope)
            rows.append(qat.row(task, qat.to_ternary(task, r), tag[len(name) + 1:]))
        print(f"\n{name}: {task.ir.describe()}")
        print(qat.format_table(task, rows))
        print("label: t<L>s<pruned %>[g] ternary (g: pruned over the whole model), b<L> "
              "binary; word x / bit x: operations of "
              "multi-level binary at the same L over word-level / bit-level skipping")
        if missing:
            print(f"not run: {', '.join(missing)}")


if __name__ == "__main__":
    main()
