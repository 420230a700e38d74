"""The ``hwgen explore`` command: its arguments and what it runs."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import time

from .stages import SYNTH_TIMEOUT
from .sweep import Axes, ExploreError


def _list(kind, text: str) -> tuple:
    """``"4,6,8"`` -> ``(4, 6, 8)``, each item through ``kind``; duplicates dropped."""
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, not {text!r}")
    return tuple(dict.fromkeys(kind(t) for t in items))


def _ints(low: int, high: int):
    def parse(text):
        def one(t):
            try:
                value = int(t)
            except ValueError:
                value = low - 1
            if not low <= value <= high:
                raise argparse.ArgumentTypeError(
                    f"expected integers in {low}..{high} separated by commas, not {text!r}")
            return value
        return _list(one, text)
    return parse


def _budgets(text: str) -> tuple:
    def one(t):
        if t.lower() == "none":
            return None
        try:
            value = float(t)
        except ValueError:
            value = -1.0
        if not 0 <= value < float("inf"):
            raise argparse.ArgumentTypeError(
                f"expected budgets >= 0 or 'none' separated by commas, not {text!r}")
        return value
    return _list(one, text)


def _targets(text: str) -> tuple:
    from ..synth.cli_support import target_names
    try:
        return tuple(dict.fromkeys(target_names(text)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def read_config(path) -> dict:
    """The ``--config`` file: a JSON object of `hwgen.quant.QuantConfig` fields fixed for
    every point, e.g. ``{"overrides": {"l0.wh": 16}, "bias_bits": 16}``."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ExploreError(f"cannot read the config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise ExploreError(f"the config {path} must hold a JSON object of QuantConfig fields")
    swept = {"weight_bits", "act_bits", "pwl_segments"} & set(config)
    if swept:
        raise ExploreError(f"the config {path} sets {', '.join(sorted(swept))}: "
                           f"those are axes, give them as options")
    return config


def add_parser(sub, add_model, add_data=None) -> None:
    """Add the ``explore`` subcommand to the `hwgen.cli` subparsers ``sub``."""
    from ..cli import MAX_LANES, _positive, _positive_int, _seed_list
    sp = sub.add_parser("explore", help="sweep quantization x lanes x targets on Dask: "
                                        "Pareto front, plots, report.html")
    add_model(sp)
    sp.add_argument("--weight-bits", type=_ints(2, 16), default=(4, 6, 8), metavar="B[,B...]")
    sp.add_argument("--act-bits", type=_ints(4, 16), default=(8,), metavar="B[,B...]")
    sp.add_argument("--lanes", type=_ints(1, MAX_LANES), default=(1, 2, 4), metavar="P[,P...]")
    sp.add_argument("--delta-budget", type=_budgets, default=(None,), metavar="D[,D...]",
                    help="delta threshold budgets (metric loss); 'none' is dense "
                         "(default none)")
    sp.add_argument("--pwl-segments", type=_ints(1, 1024), default=(16,), metavar="S[,S...]")
    sp.add_argument("--target", type=_targets, default=("ice40-up5k", "ecp5-85f"),
                    metavar="T[,T...]")
    sp.add_argument("--seeds", type=_seed_list, default=(1,), metavar="N[,N...]",
                    help="nextpnr seeds of every synthesis, the fastest kept (default 1)")
    sp.add_argument("--simulate", action="store_true", help="also check every design "
                                                            "under cocotb")
    sp.add_argument("--config", help="JSON object of QuantConfig fields for every point, "
                                     "e.g. {\"overrides\": {\"l0.wh\": 16}}")
    sp.add_argument("--out", default="explore_out", help="outputs and cache/ (default "
                                                         "explore_out)")
    sp.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 "
                                        "(default: a local cluster)")
    sp.add_argument("--workers", type=_positive_int, help="local workers (default: cores)")
    sp.add_argument("--timeout", type=_positive, default=SYNTH_TIMEOUT,
                    help=f"seconds one synthesis may take (default {SYNTH_TIMEOUT:g})")
    sp.add_argument("--retry-failed", action="store_true",
                    help="run again the points whose cached result is a tool failure")
    if add_data is not None:
        add_data(sp)
    sp.set_defaults(func=cmd_explore)


def _task_of(args):
    """A bundled model's name (each worker loads it), or your own model's task, loaded here
    with --calib/--test/--head/--layout or --data and sent to the workers."""
    from .. import cli
    from ..models import list_models
    own = any(getattr(args, k, None) for k in ("calib", "test", "head", "layout", "data"))
    loader = getattr(cli, "load_task", None)
    if args.model in list_models() and not own or loader is None:
        return args.model
    return loader(args)


def cmd_explore(args) -> int:
    from ..cli import EXIT_OK, check_writable
    from .sweep import explore
    check_writable(args.out)
    overrides = read_config(args.config) if args.config else None
    axes = Axes(weight_bits=args.weight_bits, act_bits=args.act_bits, lanes=args.lanes,
                delta_budget=args.delta_budget, pwl_segments=args.pwl_segments,
                target=args.target, seeds=args.seeds)
    start = time.monotonic()
    points = explore(_task_of(args), axes, args.out, overrides=overrides, simulate=args.simulate,
                     scheduler=args.scheduler, workers=args.workers,
                     synth_timeout=args.timeout, retry_failed=args.retry_failed)
    front = [p for p in points if p["pareto"]]
    print("Pareto front (metric, utilization, throughput):")
    for p in front:
        print(f"  {p['target']:<11} w{p['weight_bits']} a{p['act_bits']} p{p['lanes']}"
              f" metric {p['metric']:.3f}  util {p['utilization']:.3f}"
              f"  {p['throughput']:.4g} seq/s  Fmax {p['fmax_mhz']:.1f} MHz")
    print(f"wall time {time.monotonic() - start:.1f} s; report: {Path(args.out) / 'report.html'}")
    return EXIT_OK
