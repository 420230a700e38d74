"""Board bitstreams: a design folder behind the UART link, built with amaranth + YoWASP."""
from __future__ import annotations

from dataclasses import dataclass
import importlib
import json
from pathlib import Path
import sys
import time

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from .. import registered_product
from ..design_folder import build_dir
from ..synth import block_ram_registers
from ..synth.design import Design, load_design
from ..synth.errors import SynthError
from ..synth.flow import (HIDE_BRACKETED_NAMES, ICE40_COARSE_BEFORE_DSP, copies_kept,
                          soft_mul_commands, split_multipliers)
from ..synth.reports import critical_paths, fmax_of, read_pnr_report
from ..synth.targets import get_target
from ..synth.tools import log_tail, run_tool, tool_env, tool_path
from .bridge import UARTBridge

DEFAULT_BAUD = 115200
MAX_BAUD_ERROR = 0.02


class BoardError(ValueError):
    """An unknown board, or a baud rate the board's clock cannot make."""


@dataclass(frozen=True)
class Board:
    """A board the flow builds for.

    Attributes
    ----------
    name : the name users type.
    platform : ``"module:Class"`` of the amaranth-boards platform.
    target : the matching :mod:`hwgen.synth` target (same device).
    synth_opts : extra options of the board's Yosys synthesis command.
    bitstream : the file name suffix of the product (``"bin"``, ``"bit"``).
    description : one line for people.
    """

    name: str
    platform: str
    target: str
    synth_opts: str
    bitstream: str
    description: str

    def make_platform(self):
        """A fresh amaranth platform object of the board."""
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


BOARDS = {b.name: b for b in (
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40-up5k", "-dsp",
          "bin", "1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz, FTDI UART on pins 6/9"),
    Board("ulx3s", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85f", "", "bit",
          "Radiona ULX3S 85F: LFE5U-85F-CABGA381, 25 MHz, FTDI UART on M1/L4"),
)}


def get_board(name) -> Board:
    """The board called ``name``; :class:`BoardError` lists the known ones otherwise."""
    if isinstance(name, Board):
        return name
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(f"Unknown board {name!r}; known boards: "
                         f"{', '.join(sorted(BOARDS))}") from None


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles per UART bit; :class:`BoardError` if the rate would be off by > 2 %."""
    divisor = round(clock_hz / baud)
    if divisor < 4 or abs(clock_hz / divisor - baud) / baud > MAX_BAUD_ERROR:
        raise BoardError(f"A {clock_hz / 1e6:g} MHz clock cannot make {baud} baud "
                         f"within {100 * MAX_BAUD_ERROR:g} %")
    return divisor


class BoardTop(Elaboratable):
    """The board's top level: the UART pins of the platform around a :class:`UARTBridge`.

    The design runs on the board's default clock, with the platform's power-on reset. The
    first LED, where the board has one, lights on a receive overrun or framing error.

    Parameters
    ----------
    design : the :class:`hwgen.synth.Design` to wrap.
    baud : the UART rate.
    fifo_depth : bytes of the receive FIFO.
    """

    def __init__(self, design: Design, baud: int = DEFAULT_BAUD, fifo_depth: int = 512):
        self.design, self.baud, self.fifo_depth = design, baud, fifo_depth

    def elaborate(self, platform):
        m = Module()
        divisor = uart_divisor(platform.default_clk_frequency, self.baud)
        m.submodules.bridge = bridge = UARTBridge(self.design, divisor, self.fifo_depth)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [bridge.rx.eq(rx.i), tx.o.eq(bridge.tx)]
        try:
            led = platform.request("led", 0, dir="-")
        except ResourceError:  # a board without LEDs: nothing to show the errors on
            return m
        m.submodules.led_buffer = led_buffer = io.Buffer("o", led)
        m.d.comb += led_buffer.o.eq(bridge.overrun | bridge.frame_error)
        return m


def build_bitstream(design_dir, board, out_dir=None, *, baud: int = DEFAULT_BAUD,
                    fifo_depth: int = 512, progress=None) -> dict:
    """Build the bitstream of a design folder behind the UART link of a board.

    Parameters
    ----------
    design_dir : the design folder.
    board : a name of :data:`BOARDS` (``"icebreaker"``, ``"ulx3s"``).
    out_dir : the build folder; default ``<design_dir>.build/board/<board>``.
    baud : the UART rate.
    fifo_depth : bytes of the board's receive FIFO.
    progress : ``progress(stage, event, seconds)`` as in :func:`hwgen.synth.synthesize`,
        with the one stage ``"build"`` (Yosys, nextpnr and the packer in amaranth's script).

    Returns
    -------
    dict
        ``bitstream`` (path), ``board``, ``clock_hz``, ``baud``, ``divisor``,
        ``fifo_bytes``, ``fmax`` and ``critical_path`` (nextpnr), ``utilization``,
        ``seconds``, ``block_ram_registers`` (on an ECP5, else None: as in
        :func:`hwgen.synth.synthesize`'s report); also written to ``board.json`` beside
        the bitstream, where :class:`hwgen.host.BoardClient` can read the link settings.

    Raises
    ------
    BoardError, DesignFolderError, SynthError
    """
    design = load_design(design_dir)
    spec = get_board(board)
    out = Path(out_dir) if out_dir is not None else build_dir(design.path, "board", spec.name)
    out.mkdir(parents=True, exist_ok=True)
    name = "hwgen_board"
    start = time.monotonic()
    for synth_opts, after_synth, dsp_note, retry in _attempts(spec, out, name):
        if retry and progress:
            progress("build", retry, time.monotonic() - start)
        try:
            _run_build(design, spec, out, name, baud, fifo_depth, synth_opts, after_synth,
                       progress)
            break
        except SynthError as exc:
            # only running out of SB_MAC16s earns another attempt
            if not _out_of_dsps(out / "build.log"):
                raise
            failure = exc
    else:
        raise failure
    seconds = time.monotonic() - start
    if progress:
        progress("build", "done", seconds)
    pnr = read_pnr_report(out / "report_pnr.json")
    paths = critical_paths(pnr)
    clock_hz = float(spec.make_platform().default_clk_frequency)
    result = {
        "design": design.name, "board": spec.name, "description": spec.description,
        "synth_opts": synth_opts, "dsp_note": dsp_note,
        "bitstream": str(out / f"{name}.{spec.bitstream}"), "clock_hz": clock_hz,
        "baud": baud, "divisor": uart_divisor(clock_hz, baud), "fifo_bytes": fifo_depth,
        "fmax": fmax_of(pnr), "critical_path": paths[0] if paths else None,
        "utilization": {k: v for k, v in pnr.get("utilization", {}).items() if v["used"]},
        "seconds": round(seconds, 2), "out_dir": str(out),
        # (ECP5: what the step between Yosys and nextpnr moved, `_absorb_block_ram_registers`)
        "block_ram_registers": block_ram_registers.from_log(
            (out / "build.log").read_text(errors="replace")),
    }
    (out / "board.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _out_of_dsps(log: Path) -> bool:
    """Whether nextpnr stopped because the DSP cells outnumber the device's DSPs."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return "no BELs remaining to implement cell type 'ICESTORM_DSP'" in text


def _attempts(spec: Board, out: Path, name: str):
    """``(synth_opts, script_after_synth, dsp_note, progress event)`` of each build to try,
    in order, while nextpnr runs out of DSPs: as the board says; the widest multipliers on
    the DSPs and the others in logic (as hwgen synth does; probed only when needed); all of
    them in logic."""
    yield spec.synth_opts, None, None, None
    if "-dsp" not in spec.synth_opts.split():
        return
    split = _dsp_split(spec, out, name)
    if split is not None:
        yield (*split, "retry with the widest multipliers on DSPs")
    yield (" ".join(w for w in spec.synth_opts.split() if w != "-dsp"), None,
           "the multipliers wanted more DSPs than the device has: built again with all of "
           "them in logic", "retry without DSPs")


def _dsp_split(spec: Board, out: Path, name: str) -> tuple[str, str, str] | None:
    """``(synth_opts, script_after_synth, note)`` that put the widest multipliers of the
    extracted board design on the device's DSPs and the rest in logic; None when no split
    helps. A Yosys probe runs the board script's front end and ``synth_ice40`` up to the
    DSP mapping (the commands :func:`hwgen.synth.synthesize` uses for the same choice)."""
    cap = get_target(spec.target).capacity.get("DSP", 0)
    lines = (out / f"{name}.ys").read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if line.strip().startswith("synth_ice40"))
    probe = [*lines[:cut], f"synth_ice40 -dsp -top {name} -run begin:coarse",
             *ICE40_COARSE_BEFORE_DSP, f"select {name}",
             "write_json -selected -noscopeinfo dsp_probe.json", "select -clear"]
    (out / "dsp_probe.ys").write_text("\n".join(probe) + "\n")
    run_tool("yosys", [tool_path("YOSYS"), "-s", "dsp_probe.ys"], out, out / "dsp_probe.log")
    muls, on_dsp, in_logic = split_multipliers(out / "dsp_probe.json", cap)
    if not on_dsp or not in_logic:
        return None
    after = [*ICE40_COARSE_BEFORE_DSP,
             *soft_mul_commands(in_logic, out / "soft_muls.txt", "soft_muls.txt"),
             f"synth_ice40 -dsp -top {name} -run coarse:"]
    note = (f"the multipliers wanted more DSPs than the device has: the {len(on_dsp)} widest "
            f"of {len(muls)} on DSPs, {len(in_logic)} in logic")
    return "-dsp -run begin:coarse", "\n".join(after), note


def _absorb_block_ram_registers(platform) -> None:
    """Between amaranth's Yosys and nextpnr steps, the registers after block RAM reads moved
    into the block RAMs, as `hwgen synth` does (`hwgen.synth.block_ram_registers`)."""
    yosys, *rest = platform.command_templates
    step = f'"{sys.executable}" {block_ram_registers.COMMAND} {{{{name}}}}.json'
    platform._trellis_command_templates = [yosys, step, *rest]


def _run_build(design, spec: Board, out: Path, name: str, baud: int, fifo_depth: int,
               synth_opts: str, after_synth: str | None, progress) -> None:
    """One run of amaranth's build script for the board; SynthError with the log tail."""
    platform = spec.make_platform()
    target = get_target(spec.target)
    if target.family == "ecp5":
        _absorb_block_ram_registers(platform)
    for path in (*design.verilog, *design.data_files):   # (as `hwgen synth` reads them)
        device_text = registered_product.for_synthesis(path, target.family)
        platform.add_file(path.name, path.read_bytes() if device_text is None else device_text)
    overrides = {"script_after_read": "\n".join(
        # as hwgen synth does: names Yosys can map, the target's own steps (the UP5K's SPRAM)
        [HIDE_BRACKETED_NAMES, *copies_kept(design.verilog), *target.prepare])}
    # (the registered products as the device's multipliers: their registers switched on)
    products = registered_product.used_by(design.verilog)
    after_synth = "\n".join([*([after_synth] if after_synth else []), *(
        registered_product.after_synthesis(target.family) if products else [])])
    if after_synth:
        overrides["script_after_synth"] = after_synth
    plan = platform.prepare(BoardTop(design, baud, fifo_depth), name=name,
                            synth_opts=synth_opts, nextpnr_opts="--report report_pnr.json",
                            **overrides)
    plan.extract(out)
    if progress:
        progress("build", "start", 0.0)
    start = time.monotonic()
    try:
        # amaranth's script reads YOSYS, NEXTPNR_ICE40, ...: set for it alone (in this
        # process YOSYS would also switch amaranth's own Verilog backend to that Yosys)
        run_tool("build", ["sh", f"{plan.script}.sh"], out, out / "build.log", env=tool_env())
    except SynthError as exc:
        if progress:
            progress("build", "failed", time.monotonic() - start)
        logs = "\n".join(log_tail((out / f).read_text(errors="replace"), 15)
                         for f in (f"{name}.rpt", f"{name}.tim") if (out / f).exists())
        raise SynthError("build", f"bitstream build for {spec.name} failed",
                         logs or exc.log_tail, out / "build.log") from None


def format_build(result: dict) -> str:
    """A few lines for people about a :func:`build_bitstream` result."""
    lines = [f"{result['design']} on {result['board']}: {result['bitstream']}",
             f"  UART {result['baud']} baud (divisor {result['divisor']} at "
             f"{result['clock_hz'] / 1e6:g} MHz), receive FIFO {result['fifo_bytes']} bytes"]
    for clk, f in result["fmax"].items():
        lines.append(f"  Fmax {f['achieved']:.1f} MHz (needs {f['constraint']:g} MHz) on {clk}")
    used = ", ".join(f"{k} {v['used']}/{v['available']}"
                     for k, v in result["utilization"].items())
    lines.append(f"  placed: {used}")
    if result.get("dsp_note"):
        lines.append(f"  note: {result['dsp_note']}")
    lines.append(f"  built in {result['seconds']:.1f} s")
    return "\n".join(lines)
