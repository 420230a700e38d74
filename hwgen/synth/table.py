"""The human-readable table of a synthesis report."""
from __future__ import annotations

from .block_ram_registers import summary


def _num(value, fmt="{:g}") -> str:
    return "-" if value is None else fmt.format(value)


def overflow_text(over: dict) -> str:
    """``LUT 5612>5280 (placed)``: one overflowing resource; placed = nextpnr's cell demand
    after packing, which can exceed the device where Yosys' counts do not."""
    placed = " (placed)" if over["source"] == "nextpnr" else ""
    return f"{over['resource']} {_num(over['used'])}>{_num(over['available'])}{placed}"


def format_table(report: dict) -> str:
    """Render a :func:`~hwgen.synth.flow.synthesize` report as a plain-text table."""
    est = " (ESTIMATE: synthesis only)" if report["estimate"] else ""
    lines = [f"{report['design']} on {report['target']} ({report['device']}){est}"]
    if report.get("note"):
        lines.append(f"  note: {report['note']}")
    if report["pin_shell"]["used"]:
        lines.append(f"  pins: core wrapped in a serial pin shell "
                     f"(+{report['pin_shell']['extra_ffs']} FFs in the figures)")
    lines.append("")
    lines.append(f"  {'resource':<8} {'used':>9} {'placed':>9} {'available':>10} {'util':>7}")
    for res, r in report["resources"].items():
        u = r["utilization"]
        util = "-" if u is None else ("<0.1%" if 0 < u < 0.001 else f"{100 * u:.1f}%")
        lines.append(f"  {res:<8} {_num(r['used']):>9} {_num(r['placed']):>9} "
                     f"{r['available']:>10} {util:>7}")
    lines.append("")
    if report["fits"]:
        lines.append("  fits: yes" + (" (estimate)" if report["estimate"] else ""))
    else:
        what = ", ".join(overflow_text(o) for o in report["overflow"])
        lines.append(f"  fits: NO, overflows {what}")
    dsp = report.get("dsp_mapping")
    if dsp and (dsp["strategy"] != "dsp"
                or any(o["resource"] == "DSP" for o in report["overflow"])):
        lines.append(f"  DSP mapping: {dsp['strategy']} ({dsp['detail']})")
    memory = report.get("memory_mapping")
    if memory and memory["strategy"] != "block":
        lines.append(f"  memory mapping: {memory['strategy']} ({memory['detail']})")
    bram = report.get("block_ram_registers")
    if bram and bram["ports"]:
        lines.append(f"  {summary(bram)}")
    plan = report.get("floorplan")
    if plan:
        lines.append(f"  floorplan: {plan['multipliers']} lane multipliers ({plan['lanes']} "
                     f"lanes) in lane order on DSP rows {plan['rows']}, {plan['first']} to "
                     f"{plan['last']}")
    if report["fmax_mhz"] is not None:
        met = "met" if report["timing_met"] else "NOT met"
        lines.append(f"  Fmax: {report['fmax_mhz']:.1f} MHz (constraint "
                     f"{report['freq_constraint_mhz']:g} MHz, {met})")
        if report.get("router"):
            lines.append(f"  router: {report['router']}")
        if report.get("placer"):
            lines.append(f"  placer: {report['placer']}")
        by_seed = report.get("fmax_by_seed") or {}
        if len(by_seed) > 1:
            spread = ", ".join(f"{seed}: {f:.1f}" for seed, f in by_seed.items())
            lines.append(f"  seeds: {spread} MHz; kept seed {report['seed']}")
        cp = report["critical_path"]
        if cp:
            lines.append(f"  critical path: {cp['delay_ns']:.2f} ns = {cp['logic_ns']:.2f} "
                         f"logic + {cp['routing_ns']:.2f} routing, {cp['logic_levels']} "
                         f"logic levels, {cp['start']} -> {cp['end']}")
    elif report["estimate"]:
        lines.append("  Fmax: not available (no place and route)")
    perf = report["performance"]
    if "per_step" in perf:
        lines.append(f"  cycles: {perf['per_step']:g} per step + "
                     f"{perf['per_sequence_overhead']:g} per sequence ({perf['source']})")
        if perf.get("latency_per_step_us") is not None:
            lines.append(f"  latency: {perf['latency_per_step_us']:.3f} us per step; "
                         f"T={perf['steps']}: {perf['latency_per_sequence_us']:.3f} us, "
                         f"{perf['sequences_per_s']:,.0f} sequences/s at Fmax")
    if report.get("bitstream"):
        lines.append(f"  bitstream (bare core): {report['bitstream']}")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in report["stage_seconds"].items())
    lines.append(f"  time: {stages}; total {report['wall_seconds']:.1f} s")
    return "\n".join(lines)
