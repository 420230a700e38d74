"""The FPGA flow on a design folder: Yosys, nextpnr, bitstream packer, one report."""
from __future__ import annotations

import json
import math
from pathlib import Path
import time
from typing import Callable

from .. import registered_product
from ..design_folder import COPY_ATTR, SHALLOW_ATTR, build_dir
from .block_ram_registers import absorb_in_file, param_int
from .design import Design, load_design
from .errors import SynthError
from .floorplan import place_in_file
from .pins import SHELL_TOP, gowin_cst, pin_shell_verilog
from .reports import (bel_demand, cell_counts, critical_paths, fmax_of, overflowed_bel,
                      performance, read_pnr_report)
from .table import format_table
from .targets import Target, get_target
from .tools import log_tail, rel, run_tool, tool_path

#: progress(stage, event, seconds): stage is "yosys", "nextpnr" or "pack", and on an iCE40
#: whose DSPs the multipliers overflow also "yosys-dsp-probe" and "yosys-dsp-widest" or
#: "yosys-no-dsp" after "yosys" (see the iCE40 DSP notes below); event is "start"
#: (seconds 0), "done" or "failed" (seconds the stage took).
Progress = Callable[[str, str, float], None]

# Per family: place-and-route output arguments, packer arguments, bitstream name.
_PNR_OUTPUT = {"ice40": ("--asc", "pnr.asc"), "ecp5": ("--textcfg", "pnr.config"),
               "gowin": ("--write", "pnr.json")}
_PACK = {"ice40": (["pnr.asc", "design.bin"], "design.bin"),
         "ecp5": (["pnr.config", "design.bit"], "design.bit"),
         "gowin": (["-d", "{family}", "-o", "design.fs", "pnr.json"], "design.fs")}


def print_progress(stage: str, event: str, seconds: float) -> None:
    """The default progress callback: one line per stage event on stdout."""
    text = "..." if event == "start" else f"{event} in {seconds:.1f} s"
    print(f"  {stage:<8} {text}", flush=True)


def _stage(progress, seconds: dict, stage: str, fn):
    """Run ``fn()`` as one stage: report it to ``progress``, its time into ``seconds``."""
    if progress:
        progress(stage, "start", 0.0)
    start = time.monotonic()
    event = "failed"
    try:
        result = fn()
        event = "done"
        return result
    finally:
        seconds[stage] = round(time.monotonic() - start, 2)
        if progress:
            progress(stage, event, seconds[stage])


#: nextpnr's routers (None: its default, router1).
ROUTERS = (None, "router1", "router2")
#: nextpnr's placers (None: its default, heap). The analytic "static" placer placed GRU
#: I=40 H=256 at 128 lanes on the ECP5-85F in 10 minutes at 0.33 M wirelength, where heap
#: took 37 for 0.54 M that router2 could not route.
PLACERS = (None, "heap", "static")
#: A primary clock input of the ECP5s' CABGA381 package (PCLKT6_0; the ULX3S's 25 MHz clock).
ECP5_CLOCK_PIN = "G2"

#: Amaranth names a view's elements as wires ``\\data[0]``, ``\\data[1]``, ... beside the
#: wire ``\\data``. Yosys 0.70's ABC reintegration then fails an assertion (a duplicate wire
#: name) on some designs (a banked weight ROM of 2 lanes already); with those names made
#: private (``$``) the netlist is the same.
HIDE_BRACKETED_NAMES = "rename -hide w:*[[]*"

#: Identical registers marked `COPY_ATTR` (a control signal copied per group of its
#: consumers, so that no one net reaches them all) stay apart: Yosys' opt_merge would
#: otherwise make them one register again. The mark is on the wire; ``keep`` goes on the
#: flip-flop that drives it (after ``proc`` has made the flip-flops).
KEEP_COPIES = ("proc", f"setattr -set keep 1 a:{COPY_ATTR} %ci1 t:$*dff* %i")


def copies_kept(sources) -> tuple:
    """`KEEP_COPIES` where the Verilog has marked copies, else nothing (the script of a
    design without them stays as it was)."""
    return KEEP_COPIES if any(COPY_ATTR in Path(src).read_text() for src in sources) else ()


def _run_yosys(design: Design, target: Target, top: str, sources: list, out: Path,
               body: list | None = None, name: str = "synth", prepare: tuple = ()) -> dict:
    """Run one Yosys script ``<name>.ys``: read, ``hierarchy``, the target's ``prepare``
    and then `prepare`, ``body`` (default: the target's synthesis command writing
    ``netlist.json``), ``stat -json``; the cell counts.

    ``body`` lines may hold ``{out}``, the output folder relative to the Yosys run."""
    cwd = design.path  # so a $readmemh with a relative name finds its file
    # the registered products as the device's multipliers (`_device_source`)
    products = registered_product.used_by(sources)
    after = registered_product.after_synthesis(target.family) if products else []
    if body is None and after:
        body = [f"{target.synth} -top {top}", *after, "write_json {out}/netlist.json"]
    elif body is None:
        body = [f"{target.synth} -top {top} -json {{out}}/netlist.json"]
    script = registered_product.before_reading(target.family) if products else []
    script += [f"read_verilog {rel(src, cwd)}" for src in sources]
    script += [f"hierarchy -check -top {top}", HIDE_BRACKETED_NAMES, *copies_kept(sources),
               *target.prepare, *prepare,
               *(line.format(out=rel(out, cwd)) for line in body),
               f"tee -q -o {rel(out / 'stat.json', cwd)} stat -json"]
    (out / f"{name}.ys").write_text("\n".join(script) + "\n")
    log = out / f"{name}.log" if name != "synth" else out / "yosys.log"
    # Yosys writes its own log (-l): after YoWASP's in-process ABC nothing more of Yosys's
    # console output arrives, so an error after technology mapping would be lost.
    run_tool("yosys", [tool_path("YOSYS"), "-q", "-l", rel(log, cwd),
                       "-s", rel(out / f"{name}.ys", cwd)], cwd, log, writes_log=True)
    return cell_counts(out / "stat.json")


# -- iCE40 DSP budget -----------------------------------------------------------------------
#
# ``synth_ice40 -dsp`` maps every multiplier of at least 2 x 2 bits with an 11-bit product
# (mul2dsp's DSP_*_MINWIDTH) to an SB_MAC16, however many the device has (the UP5K has 8),
# and nextpnr then cannot place the design. The strategies, in order (the report's
# ``dsp_mapping``):
#
# ``dsp``
#     plain ``synth_ice40 -dsp``, kept when its SB_MAC16s fit (or when another resource
#     overflows anyway, so that no fallback could make the design fit).
# ``dsp-widest``
#     only the widest multipliers (operand widths A x B), up to the device's SB_MAC16s, go to
#     DSPs and the others to logic. A Yosys probe runs ``synth_ice40``'s ``begin`` and
#     ``flatten`` steps and the part of its ``coarse`` step before the DSP mapping and
#     writes the ``$mul`` cells with the widths mul2dsp will see; the run then repeats the
#     probe's commands (so the cells have the probe's names), turns the multipliers meant
#     for logic into ``$__soft_mul`` (which mul2dsp leaves alone and ``coarse`` turns back
#     into ``$mul`` after the DSP mapping) and runs ``synth_ice40 -dsp`` on from ``coarse``.
# ``no-dsp``
#     the last resort, when that still overflows: ``synth_ice40`` without ``-dsp``.
#
# Plain ``-dsp`` goes first, so a design that fits costs one Yosys run as before; the probe
# costs about the Verilog front end (large for deep weight memories, whose initial values
# Amaranth writes out one by one), and so is only paid when the DSPs overflow.

#: ``synth_ice40``'s ``coarse`` step up to mul2dsp (Yosys 0.70, ``help synth_ice40``).
#: The whole ``coarse`` step run afterwards repeats these harmlessly.
ICE40_COARSE_BEFORE_DSP = (
    "opt_expr", "check", "opt_clean", "opt -nodffe -nosdff", "fsm", "opt", "wreduce",
    "peepopt", "opt_clean", "share", "techmap -map +/cmp2lut.v -D LUT_WIDTH=4", "opt_expr",
    "opt_clean", "memory_dff", "alumacc -macc-only", "maccmap -unmap", "opt_clean",
    "wreduce t:$mul",
)
#: mul2dsp's limits in ``synth_ice40 -dsp``: SB_MAC16 takes 16 x 16; narrower operands than
#: 2 bits or products narrower than 11 bits stay in logic.
_ICE40_DSP_MAX, _ICE40_DSP_MIN, _ICE40_DSP_Y_MIN = 16, 2, 11


def _device_source(src: Path, target: Target, out: Path) -> Path:
    """The design file `src` as `target` synthesizes it: the registered product module
    becomes the device's multiplier with its own registers (`hwgen.registered_product`),
    written into `out`; any other file is read as it is."""
    text = registered_product.for_synthesis(src, target.family)
    if text is None:
        return src
    (out / src.name).write_text(text)
    return out / src.name


def _dsp_enabled(target: Target) -> bool:
    return target.family == "ice40" and "-dsp" in target.synth.split()


def _multipliers(netlist_path) -> list:
    """The ``$mul`` cells of a Yosys JSON netlist, widest first, with the SB_MAC16s each
    would take: ``[{module, cell, a_width, b_width, y_width, dsps}]`` (a >= b)."""
    try:
        netlist = json.loads(Path(netlist_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthError("yosys", f"no readable netlist {netlist_path}: {exc}") from None
    muls = []
    for mod_name, module in netlist.get("modules", {}).items():
        for cell_name, cell in module.get("cells", {}).items():
            if cell.get("type") != "$mul":
                continue
            p = cell.get("parameters", {})
            a, b = sorted((param_int(p["A_WIDTH"]), param_int(p["B_WIDTH"])), reverse=True)
            y = param_int(p["Y_WIDTH"])
            on_dsp = b >= _ICE40_DSP_MIN and y >= _ICE40_DSP_Y_MIN
            dsps = (-(-a // _ICE40_DSP_MAX)) * (-(-b // _ICE40_DSP_MAX)) if on_dsp else 0
            muls.append({"module": mod_name, "cell": cell_name, "a_width": a, "b_width": b,
                         "y_width": y, "dsps": dsps})
    return sorted(muls, key=lambda m: (-m["a_width"] * m["b_width"], -m["y_width"],
                                       m["module"], m["cell"]))


def soft_mul_commands(in_logic: list, listing: Path, listing_in_script: str) -> list[str]:
    """Yosys commands, run between the probe's commands and ``synth_ice40 -dsp -run
    coarse:``, that keep the multipliers ``in_logic`` off the DSPs; writes their names to
    ``listing`` (``listing_in_script``: that file as the script names it)."""
    listing.write_text("".join(f"{m['module']}/{m['cell']}\n" for m in in_logic))
    return [f"select -set hwgen_soft_muls -read {listing_in_script}",
            f"select -assert-count {len(in_logic)} @hwgen_soft_muls",
            "chtype -set $__soft_mul @hwgen_soft_muls", "select -clear"]


def split_multipliers(probe_json: Path, capacity: int) -> tuple[list, list, list]:
    """``(all, on DSPs, in logic)`` multipliers of a probe netlist (deleted after reading:
    it is as large as the netlist), the widest on the ``capacity`` DSPs."""
    muls = _multipliers(probe_json)
    probe_json.unlink()
    return (muls, *_widest_first(muls, capacity))


def _widest_first(muls: list, capacity: int) -> tuple[list, list]:
    """Split multipliers into (on DSPs, in logic): the widest first while DSPs remain."""
    on_dsp, in_logic, left = [], [], capacity
    for mul in muls:
        if 0 < mul["dsps"] <= left:
            on_dsp.append(mul)
            left -= mul["dsps"]
        else:
            in_logic.append(mul)
    return on_dsp, in_logic


def _widths(muls: list) -> list:
    return [f"{m['a_width']}x{m['b_width']}" for m in muls]


def _yosys_ice40_dsp(design, tgt, top, sources, out, progress, seconds) -> tuple[dict, dict]:
    """Synthesize for an iCE40 with DSPs without overflowing them (see the notes above).

    Returns ``(cell counts, dsp_mapping)``: the counts of the run kept, and the report's
    ``dsp_mapping``: ``strategy``, ``detail`` (a sentence), ``dsp_available``,
    ``attempts`` (``[{strategy, dsp}]``, the Yosys runs in order) and, after a probe,
    ``multipliers``, ``dsp_wanted`` (SB_MAC16s plain ``-dsp`` would take), ``on_dsp`` and
    ``in_logic`` (operand widths ``"AxB"``)."""
    cap = tgt.capacity.get("DSP", 0)
    mapping = {"strategy": None, "detail": None, "dsp_available": cap, "attempts": []}

    def attempt(strategy, stage, body):
        counts = _stage(progress, seconds, stage, lambda: _run_yosys(
            design, tgt, top, sources, out, body=body,
            name="synth" if strategy == "dsp" else strategy.replace("-", "_")))
        used = tgt.resources_of(counts)[0]
        mapping["attempts"].append({"strategy": strategy, "dsp": used.get("DSP", 0)})
        mapping["strategy"] = strategy
        return counts, used

    counts, used = attempt("dsp", "yosys", None)
    first = used.get("DSP", 0)
    if first <= cap:
        mapping["detail"] = f"synth_ice40 -dsp: {first} SB_MAC16 of {cap}"
        return counts, mapping
    others = [f"{r} ({n} > {tgt.capacity[r]})" for r, n in used.items()
              if r != "DSP" and n > tgt.capacity.get(r, 0)]
    if others:
        mapping["detail"] = (f"synth_ice40 -dsp: {first} SB_MAC16 > {cap}; no fallback tried, "
                             f"as {', '.join(others)} overflows anyway")
        return counts, mapping

    head = [f"{tgt.synth} -top {top} -run begin:coarse", *ICE40_COARSE_BEFORE_DSP]
    _stage(progress, seconds, "yosys-dsp-probe", lambda: _run_yosys(
        design, tgt, top, sources, out, name="dsp_probe",
        body=[*head, f"select {top}", "write_json -selected -noscopeinfo {out}/dsp_probe.json",
              "select -clear"]))
    muls, on_dsp, in_logic = split_multipliers(out / "dsp_probe.json", cap)
    wanted = sum(m["dsps"] for m in muls)
    mapping.update(multipliers=len(muls), dsp_wanted=wanted)
    if on_dsp and in_logic:
        counts, used = attempt(
            "dsp-widest", "yosys-dsp-widest",
            [*head, *soft_mul_commands(in_logic, out / "soft_muls.txt", "{out}/soft_muls.txt"),
             f"{tgt.synth} -top {top} -json {{out}}/netlist.json -run coarse:"])
        mapping.update(
            on_dsp=_widths(on_dsp), in_logic=_widths(in_logic),
            detail=f"synth_ice40 -dsp wanted {first} SB_MAC16 > {cap}: the {len(on_dsp)} "
                   f"widest of {len(muls)} multipliers on SB_MAC16, {len(in_logic)} in logic")
        if used.get("DSP", 0) <= cap:
            return counts, mapping
    synth = " ".join(w for w in tgt.synth.split() if w != "-dsp")
    counts, _ = attempt("no-dsp", "yosys-no-dsp",
                        [f"{synth} -top {top} -json {{out}}/netlist.json"])
    mapping.update(on_dsp=[], in_logic=_widths(muls),
                   detail=f"synth_ice40 -dsp wanted {first} SB_MAC16 > {cap} and no split of "
                          f"the multipliers fitted: synthesized without -dsp, all "
                          f"{len(muls)} in logic")
    return counts, mapping


def _yosys_block_ram(design, tgt, top, sources, out, progress, seconds):
    """Synthesize; where block RAM overflows on a target with LUT RAM (`Target.shallow_in_lut`)
    and the design has wide shallow memories (`SHALLOW_ATTR`: the MAC array's accumulators
    and biases at many lanes, each filling a few dozen of a block RAM's 512 words), again
    with those in LUT RAM and logic. Block RAM is kept while it fits: it costs no LUTs.

    Returns ``(cell counts, memory_mapping)``: the counts of the run kept and the report's
    ``memory_mapping`` (None without LUT RAM): ``strategy`` (``"block"`` or
    ``"shallow-in-lut"``), ``detail`` (a sentence), ``bram_available`` and ``attempts``
    (``[{strategy, bram}]``, the Yosys runs in order)."""
    counts = _stage(progress, seconds, "yosys",
                    lambda: _run_yosys(design, tgt, top, sources, out))
    if not tgt.shallow_in_lut:
        return counts, None
    cap = tgt.capacity.get("BRAM", 0)
    first = tgt.resources_of(counts)[0].get("BRAM", 0)
    mapping = {"strategy": "block", "bram_available": cap,
               "attempts": [{"strategy": "block", "bram": first}],
               "detail": f"{first} block RAMs of {cap}"}
    if first <= cap:
        return counts, mapping
    if not any(SHALLOW_ATTR in Path(src).read_text() for src in sources):
        mapping["detail"] = f"{first} block RAMs > {cap}, and no memory is wide and shallow"
        return counts, mapping
    counts = _stage(progress, seconds, "yosys-shallow-in-lut", lambda: _run_yosys(
        design, tgt, top, sources, out, name="shallow_in_lut", prepare=tgt.shallow_in_lut))
    second = tgt.resources_of(counts)[0].get("BRAM", 0)
    mapping["attempts"].append({"strategy": "shallow-in-lut", "bram": second})
    mapping.update(strategy="shallow-in-lut",
                   detail=f"{first} block RAMs > {cap}: the wide shallow memories in LUT "
                          f"RAM and logic, {second} block RAMs")
    return counts, mapping


def _gowin_family(target: Target) -> str:
    """The Gowin family (chip database) of a target: its ``--vopt family=...``."""
    return target.pnr_args[target.pnr_args.index("--vopt") + 1].split("=", 1)[1]


def _run_pnr(target: Target, top: str, freq: float, out: Path, seed: int, tag: str = "",
             router: str | None = None, placer: str | None = None):
    """Place and route; ``(report, None)``, or ``(None, (overflowing BEL type, its demand))``.

    ``tag`` goes into the names of the files nextpnr writes (one set per seed); ``router``
    and ``placer`` are nextpnr's, its defaults if None."""
    flag, routed = _PNR_OUTPUT[target.family]
    argv = [tool_path(*target.pnr), *target.pnr_args, "--json", "netlist.json",
            "--report", _tagged("report_pnr.json", tag), "--freq", f"{freq:g}",
            "--timing-allow-fail", "--seed", str(seed), flag, _tagged(routed, tag)]
    if router is not None:
        argv += ["--router", router]
    if placer is not None:
        argv += ["--placer", placer]
    if target.family == "ecp5" and router == "router2":
        # router2 takes a clock to the global network only from a clock pin (from another it
        # failed: "Failed to route arc 0.0 of net 'clk$TRELLIS_IO_IN'"); router1 goes
        # through the fabric, so its placements, and the figures measured with them, stay
        (out / "clock.lpf").write_text(f'LOCATE COMP "clk" SITE "{ECP5_CLOCK_PIN}";\n')
        argv += ["--lpf", "clock.lpf", "--lpf-allow-unconstrained"]
    if target.family == "gowin":
        cst = gowin_cst(out / "netlist.json", top, target.device, _gowin_family(target))
        if cst is None:
            return None, ("IOB", None)  # more port bits than free pins
        (out / "pins.cst").write_text(cst)
        argv += ["--vopt", "cst=pins.cst"]
    log = out / _tagged("nextpnr.log", tag)
    code, text, _ = run_tool("nextpnr", argv, out, log, check=False)
    if code == 0:
        return read_pnr_report(out / _tagged("report_pnr.json", tag)), None
    bel = overflowed_bel(text)
    if bel is None:
        raise SynthError("nextpnr", f"place and route failed (exit code {code})",
                         log_tail(text), log)
    return None, (bel, bel_demand(text, bel) if bel else None)


def _tagged(name: str, tag: str) -> str:
    """``report_pnr.json`` -> ``report_pnr.seed3.json`` for tag ``seed3``."""
    if not tag:
        return name
    stem, dot, ext = name.partition(".")
    return f"{stem}.{tag}{dot}{ext}"


def _place_and_route(tgt: Target, top: str, freq: float, out: Path, seeds, progress,
                     seconds, router=None,
                     placer=None) -> tuple[dict | None, tuple | None, int | None, dict]:
    """nextpnr once per seed; the fastest seed's files keep the plain names.

    Returns ``(report, (overflowing BEL, demand) or None, kept seed, {seed: Fmax MHz})``;
    placement seeds move Fmax by a few percent, so a seed sweep tells a real margin from a
    lucky placement."""
    seeds = list(seeds)
    tags = {seed: f"seed{seed}" if len(seeds) > 1 else "" for seed in seeds}
    by_seed, best = {}, None
    for seed in seeds:
        stage = "nextpnr" + (f"-{tags[seed]}" if tags[seed] else "")
        pnr, no_room = _stage(progress, seconds, stage,
                              lambda: _run_pnr(tgt, top, freq, out, seed, tags[seed],
                                               router, placer))
        if pnr is None:
            return None, no_room, None, {}  # it does not fit: no seed will change that
        by_seed[seed] = _achieved(pnr)
        if best is None or by_seed[seed] > by_seed[best[0]]:
            best = (seed, pnr)
    if len(seeds) > 1:
        for name in ("report_pnr.json", _PNR_OUTPUT[tgt.family][1], "nextpnr.log"):
            (out / _tagged(name, tags[best[0]])).replace(out / name)
            for seed in seeds:
                (out / _tagged(name, tags[seed])).unlink(missing_ok=True)
    return best[1], None, best[0], by_seed


def _achieved(pnr: dict) -> float | None:
    """The slowest clock's achieved Fmax of a nextpnr report."""
    return min((v["achieved"] for v in fmax_of(pnr).values()), default=None)


def _int(value):
    return int(value) if float(value).is_integer() else value


def _resources(target: Target, counts: dict, pnr: dict | None) -> tuple[dict, dict]:
    used, other = target.resources_of(counts)
    util = (pnr or {}).get("utilization", {})
    table = {}
    for res, cap in target.capacity.items():
        bels = [(b, w) for b, w in target.bels.get(res, ()) if b in util]
        placed = _int(sum(util[b]["used"] * w for b, w in bels)) if bels else None
        table[res] = {"used": used.get(res, 0), "available": cap, "placed": placed,
                      "utilization": (used.get(res, 0) / cap) if cap else None}
    return table, other


def _overflow(target: Target, resources: dict, no_room: tuple | None) -> list:
    """What overflows: Yosys counts over capacity, else the BEL type nextpnr ran out of
    (``used`` is then nextpnr's demand in cells of that type, when its log gives it)."""
    bel, demand = no_room or (None, None)
    over = [{"resource": res, "used": r["used"], "available": r["available"], "source": "yosys"}
            for res, r in resources.items() if r["used"] > r["available"]]
    by_bel = {b: res for res, bels in target.bels.items() for b, _ in bels}
    res = by_bel.get(bel)
    if res and not any(o["resource"] == res for o in over):
        weight = dict(target.bels.get(res, ())).get(bel, 1)  # resource units per BEL
        over.append({"resource": res, "used": _int(demand * weight) if demand is not None
                     else None, "available": target.capacity.get(res),
                     "source": "nextpnr", "bel": bel})
    if bel is not None and not over:
        over.append({"resource": bel or "unknown", "used": None, "available": None,
                     "source": "nextpnr"})
    return over


def synthesize(design_dir, target, freq_mhz: float | None = None, out_dir=None,
               progress: Progress | None = print_progress, *, steps: int | None = None,
               pack: bool = True, seeds=(1,), router: str | None = None,
               placer: str | None = None) -> dict:
    """Synthesize, place and route a design folder for one target; return the report.

    Parameters
    ----------
    design_dir : the design folder (``manifest.json`` + Verilog).
    target : a target name of :data:`~hwgen.synth.targets.TARGETS` (or a Target).
    freq_mhz : the clock aim handed to nextpnr's ``--freq``; the target's default if None.
    out_dir : where the tool files, ``report.json`` and ``report.txt`` go; default
        ``<design_dir>.build/synth/<target>``, beside the design folder.
    progress : called as ``progress(stage, event, seconds)``; None for silence.
    steps : time steps T of a sequence for the throughput figure; default the manifest's
        ``vectors.steps``, else 1.
    pack : also write the bitstream of the placed core (a pin-less core is of no use on a
        board; ``hwgen.boards`` builds board bitstreams).
    seeds : nextpnr placement seeds; with several, each is placed and routed and the
        fastest is kept (its files, report and bitstream), the others' Fmax reported.
    router : nextpnr's router, ``"router1"`` (its default, with None) or ``"router2"``
        (which routed GRU I=40 H=256 at 64 lanes on the ECP5-85F in minutes, where router1
        had not finished 32 lanes in 40).
    placer : nextpnr's placer, ``"heap"`` (its default, with None) or ``"static"`` (which
        placed GRU I=40 H=256 at 128 lanes on the ECP5-85F for router2 to route, in a
        quarter of heap's time).

    Returns
    -------
    dict
        The report also written to ``report.json`` (``report.txt`` is its table):

        ``resources``
            per resource (``LUT``, ``FF``, ``DSP``, ``BRAM``, and ``SPRAM`` on the UP5K):
            ``used`` (Yosys ``stat -json``, in the units of :mod:`.targets`), ``placed``
            (nextpnr's utilisation, None without place and route), ``available``,
            ``utilization`` (used / available).
        ``fits``, ``overflow``
            whether the design fits; else ``[{resource, used, available, source}]``.
        ``fmax_mhz``, ``fmax``, ``freq_constraint_mhz``, ``timing_met``
            achieved Fmax (the slowest clock) and per clock, from nextpnr's report.
        ``seed``, ``fmax_by_seed``
            the seed kept, and the Fmax of every seed tried.
        ``router``, ``placer``
            the nextpnr router and placer asked for (None: nextpnr's defaults).
        ``critical_path``, ``critical_paths``
            endpoints, total, logic and routing delay (ns) and logic levels per path.
        ``performance``
            ``per_step`` and ``per_sequence_overhead`` cycles (manifest), ``steps``,
            ``latency_per_step_us``, ``latency_per_sequence_us``, ``sequences_per_s``.
        ``dsp_mapping``
            on an iCE40 with DSPs (else None), how the multipliers were mapped so that
            they fit the SB_MAC16s: ``strategy`` (``"dsp"``: all on DSPs; ``"dsp-widest"``:
            the widest on DSPs, the others in logic; ``"no-dsp"``: all in logic),
            ``detail`` (a sentence), ``dsp_available``, ``attempts`` (the Yosys runs and
            their SB_MAC16 counts) and, after a fallback, ``multipliers``, ``dsp_wanted``,
            ``on_dsp`` and ``in_logic`` (operand widths ``"AxB"``).
        ``memory_mapping``
            on a target with LUT RAM (the ECP5s; else None), where the wide shallow
            memories went: ``strategy`` (``"block"``, or ``"shallow-in-lut"`` after block
            RAM overflowed), ``detail``, ``bram_available``, ``attempts`` (the Yosys runs
            and their block RAM counts).
        ``block_ram_registers``
            on an ECP5 (else None): ``ports``, the block RAM read ports given their own
            output register, and ``registers``, the flip-flops that moved into them
            (`hwgen.synth.block_ram_registers`; ``resources`` counts FFs without them).
        ``floorplan``
            on the ECP5-85F, a design of more than one region of lanes (else None): the
            lanes' multipliers pinned in lane order (`hwgen.synth.floorplan.place_lanes`).
        ``estimate``, ``note
            True for a synthesis-only target (xc7), and what to know about the target.
        ``cells``, ``pnr_utilization``, ``pin_shell``, ``bitstream``, ``stage_seconds``,
        ``wall_seconds``, ``out_dir``
            raw counts, the serial pin shell (see :mod:`.pins`), files and times.

    Raises
    ------
    DesignFolderError
        For a folder that breaks the contract.
    SynthError
        When a tool fails for another reason than the design not fitting.
    """
    wall = time.monotonic()
    if router not in ROUTERS:
        raise ValueError(f"the router must be one of {', '.join(r for r in ROUTERS if r)}, "
                         f"not {router!r}")
    if placer not in PLACERS:
        raise ValueError(f"the placer must be one of {', '.join(p for p in PLACERS if p)}, "
                         f"not {placer!r}")
    design = load_design(design_dir)
    tgt = get_target(target)
    freq = float(tgt.default_freq_mhz if freq_mhz is None else freq_mhz)
    if not math.isfinite(freq) or freq <= 0:
        raise ValueError(f"the clock aim must be a finite number of MHz > 0, not {freq_mhz!r}")
    out = Path(out_dir) if out_dir is not None else build_dir(design.path, "synth", tgt.name)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "report.txt", "report_pnr.json", "soft_muls.txt"):
        (out / stale).unlink(missing_ok=True)
    top, sources = design.top, [_device_source(src, tgt, out) for src in design.verilog]
    shell = tgt.pnr is not None and design.port_bits() > tgt.io_pins
    if shell:
        (out / "pin_shell.v").write_text(pin_shell_verilog(design))
        top, sources = SHELL_TOP, sources + [out / "pin_shell.v"]
    seconds = {}

    dsp_mapping = memory_mapping = None
    if _dsp_enabled(tgt):
        counts, dsp_mapping = _yosys_ice40_dsp(design, tgt, top, sources, out, progress,
                                               seconds)
    else:
        counts, memory_mapping = _yosys_block_ram(design, tgt, top, sources, out, progress,
                                                  seconds)
    bram_registers = floorplan = None
    if tgt.family == "ecp5" and tgt.pnr is not None:
        # the register after each block RAM read into the block (`block_ram_registers`)
        bram_registers = absorb_in_file(out / "netlist.json")
        counts["TRELLIS_FF"] = counts.get("TRELLIS_FF", 0) - bram_registers["registers"]
        # the lanes' multipliers pinned in lane order, a region together (`floorplan`)
        floorplan = place_in_file(out / "netlist.json", tgt.name)
    pnr, no_room, seed, fmax_by_seed = (None, None, None, {})
    if tgt.pnr is not None:
        pnr, no_room, seed, fmax_by_seed = _place_and_route(tgt, top, freq, out, seeds,
                                                            progress, seconds, router,
                                                            placer)
    resources, other = _resources(tgt, counts, pnr)
    # A placed design fits, whatever the Yosys-side counts say (nextpnr packs them).
    overflow = [] if pnr is not None else _overflow(tgt, resources, no_room)
    fits = not overflow
    fmax = fmax_of(pnr) if pnr else {}
    achieved = fmax_by_seed.get(seed)
    bitstream = None
    if fits and pnr is not None and pack and tgt.pack:
        args, product = _PACK[tgt.family]
        if tgt.family == "gowin":
            args = [a.format(family=_gowin_family(tgt)) for a in args]
        _stage(progress, seconds, "pack", lambda: run_tool(
            "pack", [tool_path(*tgt.pack), *args], out, out / "pack.log"))
        bitstream = str(out / product)
    vectors = design.manifest.get("vectors") or {}
    steps = int(steps or vectors.get("steps") or 1)
    paths = critical_paths(pnr) if pnr else []
    report = {
        "design": design.name, "design_dir": str(design.path), "target": tgt.name,
        "family": tgt.family, "device": tgt.device, "estimate": tgt.estimate,
        "note": tgt.note, "synth_command": tgt.synth, "dsp_mapping": dsp_mapping,
        "memory_mapping": memory_mapping, "block_ram_registers": bram_registers,
        "floorplan": floorplan,
        "place_and_route": tgt.pnr[1] if tgt.pnr else None,
        "router": router if tgt.pnr else None, "placer": placer if tgt.pnr else None,
        "freq_constraint_mhz": freq if tgt.pnr else None,
        "resources": resources, "cells": counts, "other_cells": other,
        "pnr_utilization": (pnr or {}).get("utilization"),
        "fits": fits, "overflow": overflow,
        "fmax_mhz": achieved, "fmax": fmax, "seed": seed,
        "fmax_by_seed": {str(k): v for k, v in fmax_by_seed.items()},
        "timing_met": (achieved >= freq) if achieved is not None else None,
        "critical_path": paths[0] if paths else None, "critical_paths": paths,
        "performance": performance(design.manifest, achieved, steps),
        "pin_shell": {"used": shell, "extra_ffs": (design.in_payload_bits
                                                   + design.out_payload_bits
                                                   + design.weight_beat_bits) if shell else 0},
        "bitstream": bitstream, "stage_seconds": seconds,
        "wall_seconds": round(time.monotonic() - wall, 2), "out_dir": str(out),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.txt").write_text(format_table(report) + "\n")
    return report
