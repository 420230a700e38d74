"""Read the tools' machine-readable reports: Yosys ``stat -json``, nextpnr ``--report``.

Nothing here scrapes free text, except :func:`overflowed_bel`, which reads the one line
nextpnr prints when a design does not fit (it writes no report then).
"""
from __future__ import annotations

import json
from pathlib import Path
import re

from ..design_folder import step_cycles
from .errors import SynthError

_NO_BELS = re.compile(r"no BELs remaining to implement cell type '([^']+)'"
                      # nextpnr's analytic placer: "... of 5323 ICESTORM_LCs"
                      r"|Failed to expand region .* of \d+ (\w+?)s$", re.M)
_OVERFLOW_HINTS = ("Unable to place cell", "no BELs remaining", "Failed to expand region",
                   "device only has", "but device has only", "not enough")


def cell_counts(stat_path) -> dict:
    """Cell counts by type of the whole design, from Yosys ``stat -json``."""
    try:
        stat = json.loads(Path(stat_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthError("yosys", f"no readable stat report {stat_path}: {exc}") from None
    design = stat.get("design")
    if design and "num_cells_by_type" in design:
        counts = design["num_cells_by_type"]
    else:  # older Yosys: add the modules up
        counts = {}
        for module in stat.get("modules", {}).values():
            for cell, n in module.get("num_cells_by_type", {}).items():
                counts[cell] = counts.get(cell, 0) + n
    return {cell.lstrip("\\"): int(n) for cell, n in counts.items()}


def read_pnr_report(path) -> dict:
    """The nextpnr ``--report`` JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthError("nextpnr", f"no readable nextpnr report {path}: {exc}") from None


def fmax_of(report: dict) -> dict:
    """``{clock: {"achieved": MHz, "constraint": MHz}}`` from a nextpnr report."""
    return {clk: {"achieved": float(v["achieved"]), "constraint": float(v["constraint"])}
            for clk, v in report.get("fmax", {}).items()}


def _cell(end: dict) -> str:
    return f"{end.get('cell', '?')}.{end.get('port', '?')}"


def path_summary(path: dict) -> dict:
    """One nextpnr critical path as: endpoints, total / logic / routing delay, levels."""
    steps = path.get("path", [])
    logic = sum(s["delay"] for s in steps if s.get("type") != "routing")
    routing = sum(s["delay"] for s in steps if s.get("type") == "routing")
    nets = [s["net"] for s in steps if s.get("type") == "routing" and "net" in s]
    return {
        "from_clock": path.get("from"), "to_clock": path.get("to"),
        "start": _cell(steps[0]["from"]) if steps else None,
        "end": _cell(steps[-1]["to"]) if steps else None,
        "delay_ns": round(logic + routing, 3),
        "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
        "logic_levels": sum(1 for s in steps if s.get("type") == "logic"),
        "nets": nets,
    }


def critical_paths(report: dict) -> list:
    """Summaries of every path in the report, register-to-register paths first."""
    paths = [path_summary(p) for p in report.get("critical_paths", [])]
    return sorted(paths, key=lambda p: ("<async>" in (p["from_clock"], p["to_clock"]),
                                        -p["delay_ns"]))


def overflowed_bel(log_text: str) -> str | None:
    """The BEL type nextpnr ran out of, or ``""`` for another overflow message, or None
    when the log shows no overflow."""
    match = _NO_BELS.search(log_text)
    if match:
        return match.group(1) or match.group(2)
    if any(hint in log_text for hint in _OVERFLOW_HINTS):
        return ""
    return None


def bel_demand(log_text: str, bel: str) -> int | None:
    """How many ``bel`` cells nextpnr's utilisation line says the design needs, if it says."""
    match = re.search(rf"^Info:\s+{re.escape(bel)}:\s+(\d+)/\s*\d+", log_text, re.M)
    return int(match.group(1)) if match else None


def cycle_figures(manifest: dict) -> dict:
    """Cycles per step and per-sequence overhead from the manifest's ``cycles``.

    The contract's keys are ``per_step`` and ``per_sequence_overhead``; a step's cycles
    are `design_folder.step_cycles` (with a head on every step, its cycles included). A
    manifest that gives a ``head`` cost instead of the overhead counts it once per sequence
    (head on the last step) or once per step (``head_mode == "every"``).
    """
    cycles = manifest.get("cycles") or {}
    if "per_step" not in cycles:
        return {}
    overhead = cycles.get("per_sequence_overhead")
    if overhead is not None:
        return {"per_step": float(step_cycles(cycles)),
                "per_sequence_overhead": float(overhead), "source": "manifest"}
    # no overhead given: the head's cycles are added here, to the contract's per_step alone
    per_step, head = float(cycles["per_step"]), float(cycles.get("head", 0))
    if manifest.get("head_mode") == "every":
        per_step, overhead = per_step + head, 0.0
        source = "manifest; head cycles added to every step"
    else:
        overhead = head
        source = "manifest; head cycles once per sequence"
    return {"per_step": per_step, "per_sequence_overhead": float(overhead), "source": source}


def performance(manifest: dict, fmax_mhz: float | None, steps: int) -> dict:
    """Latency per step and sequences per second for ``steps`` time steps at ``fmax_mhz``."""
    cyc = cycle_figures(manifest)
    if not cyc:
        return {"note": "manifest has no cycles.per_step"}
    seq_cycles = steps * cyc["per_step"] + cyc["per_sequence_overhead"]
    out = {**cyc, "steps": steps, "cycles_per_sequence": seq_cycles, "clock_mhz": fmax_mhz}
    if fmax_mhz:
        out["latency_per_step_us"] = cyc["per_step"] / fmax_mhz
        out["latency_per_sequence_us"] = seq_cycles / fmax_mhz
        out["sequences_per_s"] = fmax_mhz * 1e6 / seq_cycles if seq_cycles else None
    return out
