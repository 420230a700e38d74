"""The `hwgen` command."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import flow

DEFAULT_OUT = Path("rtl_out")


def _known_errors() -> tuple:
    """Errors that are the user's to fix: printed as one line, never as a traceback."""
    from .frontend import UnsupportedModelError
    from .plots import PlotError
    from .quant import QuantConfigError
    from .rtl.plan import PlanError
    errors = [flow.FlowError, UnsupportedModelError, QuantConfigError, PlanError, PlotError,
              FileNotFoundError]
    try:
        from .sim import SimulationError
        errors.append(SimulationError)
    except ImportError:
        pass
    try:
        from .synth import SynthError
        errors.append(SynthError)
    except ImportError:
        pass
    return tuple(errors)


def _parse_delta(values):
    """'--delta 4,8' for every layer, or one 'tx,th' per layer."""
    if not values:
        return None
    out = []
    for v in values:
        try:
            tx, th = (int(p) for p in v.split(","))
        except ValueError:
            raise flow.FlowError(f"--delta takes 'theta_x,theta_h' integers, not {v!r}")
        out.append((tx, th))
    return out


def _quant_config(args):
    from .quant import QuantConfig
    return QuantConfig(weight_bits=args.weight_bits, act_bits=args.act_bits,
                       scheme=args.scheme, pwl_segments=args.pwl_segments)


def cmd_list(args) -> int:
    from .models import list_models, load_model
    for name in list_models():
        model, meta = load_model(name)
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in meta.get("metrics", {}).items()
                            if isinstance(v, (int, float)))
        print(f"{name:<14} {flow.from_torch(model).describe():<45} {meta.get('task', '')} "
              f"{metrics}")
    return 0


def _check_plot(args) -> None:
    if args.plot:
        from .plots import check_figure_path
        check_figure_path(args.plot)


def cmd_quantize(args) -> int:
    _check_plot(args)
    task = flow.load_task(args.model)
    print(f"{task.name}: {task.ir.describe()}")
    rows = flow.quantization_table(task, args.bits)
    print(flow.format_quant_table(task, rows))
    if args.plot:
        from .plots import quantization_figure
        print(f"figure: {quantization_figure(rows, task.metric_name, task.name, args.plot)}")
    return 0


def _delta_for(task, qm, args):
    if args.delta_budget is not None:
        from .delta import choose_thresholds
        xq = qm.quantize_inputs(task.x_test)
        best, _ = choose_thresholds(qm, xq, flow.int_score(task, qm),
                                    args.delta_budget)
        print(f"delta thresholds {best.thresholds}: {task.metric_name} "
              f"{abs(best.metric):.3f}, MACs eliminated {100 * best.macs_eliminated:.1f}%")
        return best.thresholds
    return _parse_delta(args.delta)


def cmd_generate(args) -> int:
    task = flow.load_task(args.model)
    qm = flow.quantize(task, _quant_config(args))
    delta = _delta_for(task, qm, args)
    name = args.name or f"{task.name}_p{args.lanes}" + ("_delta" if delta else "")
    out = Path(args.out) / name
    with flow.Progress(f"generate {out}"):
        flow.generate_design(task, qm, out, args.lanes, delta=delta, sequences=args.sequences)
    print(f"wrote {out}/ (Verilog, weights.hex, biases.hex, vectors.npz, manifest.json)")
    return 0


def cmd_simulate(args) -> int:
    from .sim import format_sim_report, simulate
    with flow.Progress(f"simulate {args.design}"):
        result = simulate(args.design, seed=args.seed, stall_in=args.stall_in,
                          stall_out=args.stall_out, max_sequences=args.max_sequences,
                          waves=args.waves)
    print(format_sim_report(result))
    return 0 if result.mismatches == 0 else 1


def _seed_list(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``: distinct positive nextpnr seeds."""
    try:
        seeds = tuple(dict.fromkeys(int(s) for s in text.split(",")))
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2,3; got {text!r}")
    return seeds


def cmd_synth(args) -> int:
    from .synth.cli_support import synth_command
    return synth_command(args.design, args.target, args.freq, args.seeds)


def cmd_build(args) -> int:
    from .synth.cli_support import build_command
    return build_command(args.design, args.board)


def cmd_delta(args) -> int:
    _check_plot(args)
    from .delta import choose_thresholds, sweep
    task = flow.load_task(args.model)
    qm = flow.quantize(task, _quant_config(args))
    xq = qm.quantize_inputs(task.x_test)
    score = flow.int_score(task, qm)
    print(f"{'theta':>6} {task.metric_name:>11} {'MACs elim':>10} {'fired':>7}")
    points = sweep(qm, xq, score)
    for p in points:
        print(f"{p.thresholds[0][0]:>6} {abs(p.metric):>11.3f} "
              f"{100 * p.macs_eliminated:>9.1f}% {100 * p.fired_fraction:>6.1f}%")
    best, _ = choose_thresholds(qm, xq, score, args.budget)
    print(f"chosen within {args.budget} of dense: thresholds {best.thresholds}, "
          f"{task.metric_name} {abs(best.metric):.3f}, "
          f"MACs eliminated {100 * best.macs_eliminated:.1f}%")
    if args.plot:
        from .plots import delta_figure
        path = delta_figure(points, points[0].metric, task.metric_name, args.plot, best,
                            args.budget)
        print(f"figure: {path}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwgen", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def add_model(sp):
        sp.add_argument("model", nargs="?", default=flow.DEFAULT_MODEL,
                        help=f"bundled model name (default {flow.DEFAULT_MODEL}; see `hwgen list`)")

    def add_quant(sp):
        sp.add_argument("--weight-bits", type=int, default=8)
        sp.add_argument("--act-bits", type=int, default=8)
        sp.add_argument("--scheme", choices=("calibrated", "global"), default="calibrated")
        sp.add_argument("--pwl-segments", type=int, default=16)

    sp = sub.add_parser("list", help="list the bundled models")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("quantize", help="float vs quantized accuracy and memory table")
    add_model(sp)
    sp.add_argument("--bits", type=int, nargs="+", default=[16, 8, 6, 4])
    sp.add_argument("--plot", metavar="FILE.png", help="also draw the table")
    sp.set_defaults(func=cmd_quantize)

    sp = sub.add_parser("generate", help="write rtl_out/<design>/ for a model")
    add_model(sp)
    add_quant(sp)
    sp.add_argument("--lanes", type=int, default=flow.DEFAULT_LANES,
                    help=f"MAC lanes P (1..32, default {flow.DEFAULT_LANES})")
    sp.add_argument("--delta", nargs="+", metavar="TX,TH",
                    help="delta network thresholds, one 'tx,th' per layer")
    sp.add_argument("--delta-budget", type=float,
                    help="choose delta thresholds within this metric loss")
    sp.add_argument("--sequences", type=int, default=100, help="test vectors to store")
    sp.add_argument("--name", help="design name (default: <model>_p<lanes>)")
    sp.add_argument("--out", default=str(DEFAULT_OUT))
    sp.set_defaults(func=cmd_generate)

    sp = sub.add_parser("simulate", help="cocotb + Verilator, bit for bit against the reference")
    sp.add_argument("design", help="a design folder, e.g. rtl_out/digits_lstm_p2")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--stall-in", type=float, default=0.3)
    sp.add_argument("--stall-out", type=float, default=0.3)
    sp.add_argument("--max-sequences", type=int)
    sp.add_argument("--waves", action="store_true")
    sp.set_defaults(func=cmd_simulate)

    from .synth.targets import TARGETS
    sp = sub.add_parser("synth", help="Yosys + nextpnr: resources, Fmax, throughput")
    sp.add_argument("design", help="a design folder, e.g. rtl_out/digits_lstm_p2")
    sp.add_argument("--target", default="ice40-up5k",
                    help=f"one of {', '.join(TARGETS)} (default ice40-up5k)")
    sp.add_argument("--freq", type=float,
                    help="nextpnr frequency constraint, MHz (default: the target's aim)")
    sp.add_argument("--seeds", type=_seed_list, default=(1,), metavar="N[,N...]",
                    help="nextpnr placement seeds, e.g. 1,2,3,4: each is placed and routed, "
                         "the fastest kept (default 1)")
    sp.set_defaults(func=cmd_synth)

    sp = sub.add_parser("build", help="bitstream for a board (UART host link)")
    sp.add_argument("design", help="a design folder, e.g. rtl_out/digits_lstm_p2")
    sp.add_argument("--board", default="icebreaker", help="icebreaker or ulx3s")
    sp.set_defaults(func=cmd_build)

    sp = sub.add_parser("delta", help="delta threshold sweep and budgeted choice")
    add_model(sp)
    add_quant(sp)
    sp.add_argument("--budget", type=float, default=1.0,
                    help="allowed metric loss vs dense (accuracy points or bits/char)")
    sp.add_argument("--plot", metavar="FILE.png", help="also draw the sweep")
    sp.set_defaults(func=cmd_delta)

    sp = sub.add_parser("demo", help="the main job on the bundled default model")
    sp.add_argument("--model", default=flow.DEFAULT_MODEL)
    sp.add_argument("--lanes", type=int, default=flow.DEFAULT_LANES)
    sp.add_argument("--out", default=str(DEFAULT_OUT))
    sp.add_argument("--no-sim", action="store_true", help="skip the RTL simulation")
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _known_errors() as exc:
        print(f"hwgen: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
