"""The `hwgen` command.

Exit codes, the same for every subcommand:

  0  success.
  1  the check ran and failed: simulation mismatches (or nothing compared), a design that
     does not fit the device.
  2  an error: bad input (arguments, model, design folder), a file that cannot be written,
     a tool that failed. One line starting `hwgen: error:` on stderr says what; a tool's log
     tail, if any, goes to stdout just before it.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import re
import sys
from pathlib import Path

from . import flow
from .rtl.plan import MAX_LANES, WEIGHT_STORAGE

DEFAULT_OUT = Path("rtl_out")
EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    """A bad command line, raised by the parser instead of argparse's print-and-exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _known_errors() -> tuple:
    """Errors printed as one line (exit 2), never as a traceback: bad input, files that
    cannot be read or written, failed tools. Anything else is a bug and keeps its traceback."""
    from .boards import BoardError
    from .frontend import UnsupportedModelError
    from .loaders import DataFormatError
    from .plots import PlotError
    from .quant import QuantConfigError
    from .rtl.plan import PlanError
    from .sim import SimulationError
    from .synth.errors import DesignFolderError, SynthError
    return (flow.FlowError, UnsupportedModelError, QuantConfigError, PlanError, PlotError,
            SimulationError, SynthError, DesignFolderError, BoardError, UsageError,
            DataFormatError, OSError)


def _message(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


# argparse types: a bad value is a usage error (exit 2), before any work.

def _int(text: str, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= (high or value):
        want = "a positive integer" if high is None else f"an integer in 1..{high}"
        raise argparse.ArgumentTypeError(f"expected {want}, not {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int(text)


def _vocab_size(text: str) -> int:
    """A vocabulary size: room for the special tokens (<pad>/<unk>, <unk>/<eos>) and a word."""
    value = _int(text)
    if value < 3:
        raise argparse.ArgumentTypeError(f"expected an integer >= 3 (two special tokens and "
                                         f"a word), not {text!r}")
    return value


def _lanes(text: str) -> int:
    return _int(text, MAX_LANES)


def _units(text: str) -> int:
    value = _int(text, MAX_LANES)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"expected a power of two, not {text!r}")
    return value


def _float(text: str, low: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low or (strict and value == low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise argparse.ArgumentTypeError(f"expected a finite number {bound}, not {text!r}")
    return value


def _non_negative(text: str) -> float:
    return _float(text, 0.0, strict=False)


def _positive(text: str) -> float:
    return _float(text, 0.0, strict=True)


def _probability(text: str) -> float:
    value = _non_negative(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), not {text!r}")
    return value


def _design_name(text: str) -> str:
    """A plain folder name: never a path, so the design stays inside --out."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"a design name is a plain folder name of letters, digits, '_', '.' and '-', "
            f"not {text!r}")
    return text


def _delta_pair(text: str) -> tuple[int, int]:
    """'4,8' -> (4, 8): one layer's (theta_x, theta_h), integers >= 0."""
    try:
        tx, th = (int(p) for p in text.split(","))
    except ValueError:
        tx = th = -1
    if min(tx, th) < 0:
        raise argparse.ArgumentTypeError(
            f"expected 'theta_x,theta_h' integers >= 0, not {text!r}")
    return tx, th


def _seed_list(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``: distinct positive nextpnr seeds."""
    try:
        seeds = tuple(dict.fromkeys(int(s) for s in text.split(",")))
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2,3; got {text!r}")
    return seeds


def _target_list(text: str) -> list[str]:
    from .synth.cli_support import target_names
    try:
        return target_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cannot_write(path, exc: OSError) -> flow.FlowError:
    return flow.FlowError(f"cannot write {exc.filename or path}: {exc.strerror or exc}")


def check_writable(path) -> None:
    """Refuse, before any work, a `path` whose nearest existing ancestor is not a folder
    we may write in (a FlowError ``cannot write <path>: <reason>``)."""
    base = Path(path).absolute()
    while not base.exists() and base != base.parent:
        base = base.parent
    code = (errno.ENOTDIR if not base.is_dir() else
            errno.EACCES if not os.access(base, os.W_OK | os.X_OK) else None)
    if code is not None:
        raise _cannot_write(path, OSError(code, os.strerror(code)))


@contextlib.contextmanager
def writing(path):
    """Turn an OSError while writing `path` into one line, ``cannot write <file>: <reason>``."""
    try:
        yield
    except OSError as exc:
        raise _cannot_write(path, exc) from None


def _quant_config(args):
    from .quant import QuantConfig
    return QuantConfig(weight_bits=args.weight_bits, act_bits=args.act_bits,
                       scheme=args.scheme, pwl_segments=args.pwl_segments,
                       embedding=args.embedding)


def cmd_list(args) -> int:
    from .models import list_models, load_model
    for name in list_models():
        model, meta = load_model(name)
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in meta.get("metrics", {}).items()
                            if isinstance(v, (int, float)))
        print(f"{name:<14} {flow.from_torch(model).describe():<45} {meta.get('task', '')} "
              f"{metrics}")
    return EXIT_OK


def _check_plot(args) -> None:
    if args.plot:
        from .plots import check_figure_path
        check_figure_path(args.plot)


def load_task(args):
    """The task of `args.model`: bundled, or your own with --calib/--test/--head/--layout,
    or with --data/--format (and --labels, --vocab-size, --seq-len, --limit)."""
    from .usermodel import DATA_OPTIONS, USER_OPTIONS
    user = {k: getattr(args, k, None) for k in USER_OPTIONS + ("data",) + DATA_OPTIONS}
    given = next((k for k in ("data",) + DATA_OPTIONS if user[k] is not None), None)
    if given:
        from .models import list_models
        if args.model in list_models():
            raise flow.FlowError(f"--{given.replace('_', '-')}: for your own model; "
                                 f"{args.model!r} is bundled and brings its own data")
    return flow.load_task(args.model, **user)


def cmd_quantize(args) -> int:
    _check_plot(args)
    task = load_task(args)
    print(f"{task.name}: {task.ir.describe()}")
    rows = flow.quantization_table(task, args.bits, embedding=args.embedding)
    print(flow.format_quant_table(task, rows))
    if args.plot:
        from .plots import quantization_figure
        print(f"figure: {quantization_figure(rows, task.metric_name, task.name, args.plot)}")
    return EXIT_OK


def _delta_for(task, qm, args):
    if args.delta_budget is not None:
        from .delta import choose_thresholds
        xq = qm.quantize_inputs(task.x_test)
        best, _ = choose_thresholds(qm, xq, flow.int_score(task, qm),
                                    args.delta_budget, layout=flow.TASK_LAYOUT)
        print(f"delta thresholds {best.thresholds}: {task.metric_name} "
              f"{abs(best.metric):.3f}, MACs eliminated {100 * best.macs_eliminated:.1f}%")
        return best.thresholds
    return args.delta


def cmd_generate(args) -> int:
    from .rtl.plan import check_units
    out_dir = Path(args.out)
    check_writable(out_dir)
    if args.units is not None:
        check_units(args.units, args.lanes)
    from .qat import shipped_ternary
    shipped = shipped_ternary(args.model)
    if shipped is not None:   # a shipped ternary result: the multiplier-free datapath
        task, tm = shipped
        task.name = args.model
        qm = tm.qm
    else:
        for given, flag in ((args.scale_step is not None, "--scale-step"),
                            (args.balance_lanes is not None,
                             "--balance-lanes" if args.balance_lanes else "--no-balance-lanes"),
                            (args.early_passes is not None,
                             "--early-passes" if args.early_passes else "--no-early-passes")):
            if given:
                raise UsageError(f"{flag} is for a shipped ternary model (the "
                                 f"multiplier-free datapath)")
        task = load_task(args)
        qm = flow.quantize(task, _quant_config(args))
    delta = _delta_for(task, qm, args)
    out = out_dir / (args.name or f"{task.name}_p{args.lanes}" + ("_delta" if delta else ""))
    with flow.Progress(f"generate {out}"), writing(out):
        flow.generate_design(task, qm, out, args.lanes, delta=delta,
                             sequences=args.sequences or min(100, len(task.x_test)),
                             units=args.units, scale_step=args.scale_step,
                             weights=args.weights, balance_lanes=args.balance_lanes,
                             early_passes=args.early_passes is not False)
    weights = "weights.hex" if qm.ternary is None else "entries.hex, pointers.hex"
    if args.weights == "load":
        weights += ", weights.bin (the weight stream's image)"
    print(f"wrote {out}/ (Verilog, {weights}, biases.hex, vectors.npz, manifest.json)")
    return EXIT_OK


def cmd_simulate(args) -> int:
    from .sim import format_sim_report, simulate
    with flow.Progress(f"simulate {args.design}"):
        result = simulate(args.design, seed=args.seed, stall_in=args.stall_in,
                          stall_out=args.stall_out, max_sequences=args.max_sequences,
                          waves=args.waves)
    print(format_sim_report(result))
    return EXIT_OK if result.mismatches == 0 and result.compared > 0 else EXIT_FAIL


def cmd_synth(args) -> int:
    from .synth.cli_support import synth_command
    fits = synth_command(args.design, args.target, args.freq, args.seeds, args.router,
                         args.placer)
    return EXIT_OK if fits else EXIT_FAIL


def cmd_build(args) -> int:
    from .synth.cli_support import build_command
    build_command(args.design, args.board, args.out)
    return EXIT_OK


def cmd_delta(args) -> int:
    _check_plot(args)
    from .delta import choose_thresholds, sweep
    task = load_task(args)
    qm = flow.quantize(task, _quant_config(args))
    xq = qm.quantize_inputs(task.x_test)
    score = flow.int_score(task, qm)
    print(f"{'theta':>6} {task.metric_name:>11} {'MACs elim':>10} {'fired':>7}")
    points = sweep(qm, xq, score, layout=flow.TASK_LAYOUT)
    for p in points:
        print(f"{p.thresholds[0][0]:>6} {abs(p.metric):>11.3f} "
              f"{100 * p.macs_eliminated:>9.1f}% {100 * p.fired_fraction:>6.1f}%")
    best, _ = choose_thresholds(qm, xq, score, args.budget, layout=flow.TASK_LAYOUT)
    print(f"chosen within {args.budget} of dense: thresholds {best.thresholds}, "
          f"{task.metric_name} {abs(best.metric):.3f}, "
          f"MACs eliminated {100 * best.macs_eliminated:.1f}%")
    if args.plot:
        from .plots import delta_figure
        path = delta_figure(points, points[0].metric, task.metric_name, args.plot, best,
                            args.budget)
        print(f"figure: {path}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hwgen", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def add_model(sp):
        sp.add_argument("model", nargs="?", default=flow.DEFAULT_MODEL,
                        help=f"bundled model name (default {flow.DEFAULT_MODEL}; see `hwgen "
                             "list`), or your own: a torch.save or TorchScript file, an .onnx "
                             "file, or package.module:attr")
        sp.add_argument("--calib", metavar="FILE.npz",
                        help="your model's calibration inputs ('x', in its own layout)")
        sp.add_argument("--test", metavar="FILE.npz",
                        help="your model's test inputs 'x' and labels 'y' (default: agreement "
                             "with the float model on the calibration inputs)")
        sp.add_argument("--head", choices=("last", "every"),
                        help="your model's head reads the last step or every step")
        sp.add_argument("--layout", choices=("NTI", "TNI"),
                        help="your data's layout (default: the model's own)")

    def add_data(sp):
        from .loaders import FORMATS
        g = sp.add_argument_group("your model's data in a real format")
        g.add_argument("--data", metavar="PATH",
                       help="the data the metric is measured on (and calibrated on): imdb: "
                            "the aclImdb folder (train/ for the vocabulary and calibration, "
                            "test/ for the metric); ptb: the folder of ptb.{train,valid,test}"
                            ".txt; kaldi: a text .ark; npz: an .npz with x (and labels y)")
        g.add_argument("--format", choices=FORMATS, help="the format of --data")
        g.add_argument("--labels", metavar="FILE",
                       help="kaldi: 'utt-id label' lines (default: agreement with the float "
                            "model)")
        g.add_argument("--vocab-size", type=_vocab_size, metavar="N",
                       help="imdb, ptb: vocabulary size with its special tokens (default: "
                            "every train word)")
        g.add_argument("--seq-len", type=_positive_int, metavar="T",
                       help="imdb, kaldi: keep each sequence's last T steps; ptb: sequence "
                            "length (default 35)")
        g.add_argument("--limit", type=_positive_int, metavar="N",
                       help="measure the metric on at most N test sequences, evenly spread")

    def add_quant(sp):
        sp.add_argument("--weight-bits", type=_positive_int, default=8)
        sp.add_argument("--act-bits", type=_positive_int, default=8)
        sp.add_argument("--scheme", choices=("calibrated", "global"), default="calibrated")
        sp.add_argument("--pwl-segments", type=_positive_int, default=16)
        add_embedding(sp)

    def add_embedding(sp):
        from .quant import EMBEDDING_DESIGNS
        sp.add_argument("--embedding", choices=EMBEDDING_DESIGNS, default="auto",
                        help="a model with an nn.Embedding: a token ROM, or the table folded "
                             "into layer 0 (auto: the one of less memory; docs/embeddings.md)")

    sp = sub.add_parser("list", help="list the bundled models")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("quantize", help="float vs quantized accuracy and memory table")
    add_model(sp)
    sp.add_argument("--bits", type=_positive_int, nargs="+", default=[16, 8, 6, 4])
    sp.add_argument("--plot", metavar="FILE.png", help="also draw the table")
    add_embedding(sp)
    add_data(sp)
    sp.set_defaults(func=cmd_quantize)

    sp = sub.add_parser("generate", help="write rtl_out/<design>/ for a model")
    add_model(sp)
    add_quant(sp)
    sp.add_argument("--lanes", type=_lanes, default=flow.DEFAULT_LANES,
                    help=f"MAC lanes P (1..{MAX_LANES}, default {flow.DEFAULT_LANES})")
    sp.add_argument("--units", type=_units,
                    help="element-wise units E, a power of two dividing P (default: the "
                         "fewest that hide ACTIVATE under the next step's input columns "
                         "where steps overlap, at most P/8; else P/8, at least 1): "
                         "ACTIVATE issues E elements a cycle")
    sp.add_argument("--balance-lanes", action=argparse.BooleanOptionalAction,
                    help="ternary models: each layer's hidden units reordered so that the "
                         "lanes share the nonzero digits evenly (fewer stored words and "
                         "cycles, the same outputs; the default), or not")
    sp.add_argument("--early-passes", action=argparse.BooleanOptionalAction,
                    help="ternary models: a pass begins under the ACTIVATE before it, each "
                         "column once the h it reads is written (the default: fewer cycles "
                         "for a few dozen logic cells), or after it")
    sp.add_argument("--scale-step", type=_positive_int,
                    help="ternary models: scale bits the combiner applies a cycle (default "
                         "1: the fewest LUTs; more: fewer combine cycles)")
    sp.add_argument("--weights", choices=WEIGHT_STORAGE, default="rom",
                    help="rom (default): the weights are the weight memory's contents; load: "
                         "a memory with none (the UP5K's SPRAM), filled through the "
                         "'weights' stream, a byte a beat, before the first input (a "
                         "ternary model: its entry words)")
    sp.add_argument("--delta", type=_delta_pair, nargs="+", metavar="TX,TH",
                    help="delta network thresholds, one 'tx,th' per layer")
    sp.add_argument("--delta-budget", type=_non_negative,
                    help="choose delta thresholds within this metric loss")
    sp.add_argument("--sequences", type=_positive_int,
                    help="test vectors to store (default 100, or all test inputs if fewer)")
    sp.add_argument("--name", type=_design_name,
                    help="design name, a plain folder name (default: <model>_p<lanes>)")
    sp.add_argument("--out", default=str(DEFAULT_OUT))
    add_data(sp)
    sp.set_defaults(func=cmd_generate)

    sp = sub.add_parser("simulate", help="cocotb + Verilator, bit for bit against the reference")
    sp.add_argument("design", help="a design folder, e.g. rtl_out/digits_lstm_p2")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--stall-in", type=_probability, default=0.3)
    sp.add_argument("--stall-out", type=_probability, default=0.3)
    sp.add_argument("--max-sequences", type=_positive_int)
    sp.add_argument("--waves", action="store_true",
                    help="write a waveform of the run (a build with trace support, beside the other)")
    sp.set_defaults(func=cmd_simulate)

    from .synth.flow import PLACERS, ROUTERS
    from .synth.targets import TARGETS
    sp = sub.add_parser("synth", help="Yosys + nextpnr: resources, Fmax, throughput")
    sp.add_argument("design", help="a design folder, e.g. rtl_out/digits_lstm_p2")
    sp.add_argument("--target", type=_target_list, default="ice40-up5k",
                    help=f"one of {', '.join(TARGETS)}, several separated by commas, or all "
                         "(default ice40-up5k)")
    sp.add_argument("--freq", type=_positive,
                    help="nextpnr frequency constraint, MHz (default: the target's aim)")
    sp.add_argument("--seeds", type=_seed_list, default=(1,), metavar="N[,N...]",
                    help="nextpnr placement seeds, e.g. 1,2,3,4: each is placed and routed, "
                         "the fastest kept (default 1)")
    sp.add_argument("--router", choices=[r for r in ROUTERS if r],
                    help="nextpnr's router (default: nextpnr's, router1 on iCE40 and ECP5); "
                         "router2 routes large designs far sooner")
    sp.add_argument("--placer", choices=[p for p in PLACERS if p],
                    help="nextpnr's placer (default: nextpnr's, heap); static places the "
                         "largest designs sooner and tighter")
    sp.set_defaults(func=cmd_synth)

    sp = sub.add_parser("build", help="bitstream for a board (UART host link)")
    sp.add_argument("design", help="a design folder, e.g. rtl_out/digits_lstm_p2")
    sp.add_argument("--board", default="icebreaker", help="icebreaker or ulx3s")
    sp.add_argument("--out", help="output folder (default: beside the design)")
    sp.set_defaults(func=cmd_build)

    sp = sub.add_parser("delta", help="delta threshold sweep and budgeted choice")
    add_model(sp)
    add_quant(sp)
    sp.add_argument("--budget", type=_non_negative, default=1.0,
                    help="allowed metric loss vs dense (accuracy points or bits/char)")
    sp.add_argument("--plot", metavar="FILE.png", help="also draw the sweep")
    add_data(sp)
    sp.set_defaults(func=cmd_delta)

    sp = sub.add_parser("demo", help="the main job on the bundled default model")
    sp.add_argument("--model", default=flow.DEFAULT_MODEL)
    sp.add_argument("--lanes", type=_lanes, default=flow.DEFAULT_LANES)
    sp.add_argument("--out", default=str(DEFAULT_OUT))
    sp.add_argument("--no-sim", action="store_true", help="skip the RTL simulation")
    sp.set_defaults(func=cmd_demo)

    from .explore.command import add_parser as add_explore
    add_explore(sub, add_model, add_data)

    from .qat import add_parser as add_ternary
    add_ternary(sub, _int, _probability)
    return p


def main(argv=None) -> int:
    """Run the command line `argv` (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except _known_errors() as exc:
        first, _, rest = _message(exc).partition("\n")
        if rest:
            print(rest, flush=True)     # a tool's log tail: context for the one error line
        print(f"hwgen: error: {first}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
