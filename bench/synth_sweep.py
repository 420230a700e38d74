"""FPGA resources, Fmax and throughput of the accelerator over MAC lanes, on two targets.

A GRU with I=16, H=64 (random weights; 8-bit activations; 8- and 4-bit weights, as its
123 kbit of 8-bit weights overflow the UP5K's 120 kbit of EBR) at 1, 2, 4 and 8 MAC lanes,
and the committed default design (rtl_out/digits_lstm_p2), each through the whole flow
(Yosys, nextpnr, packer) for the iCE40 UP5K (aim 48 MHz) and the ECP5-85F (aim 125 MHz).
Per run: LUT, FF, DSP and block RAM (iCE40 EBR/SPRAM, ECP5 DP16KD), whether it fits and
what overflows, how the multipliers went to DSPs, Fmax, cycles per step (manifest), latency
per step and steps/s at Fmax, and the flow's wall time; then the critical path of each run.

    python bench/synth_sweep.py [--lanes 1,2,4,8] [--targets ice40-up5k,ecp5-85f]
                                [--weight-bits 8,4] [--no-bundled]
                                [--json bench/results/synth_sweep.json] [--keep DIR]

The table is also written as JSON (``--json``); the design folders and tool files go to a
temporary folder unless ``--keep`` names one.
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from common import random_task_model, smooth_inputs

from hwgen import flow
from hwgen.quant import QuantConfig, quantize_model
from hwgen.rtl.emit import generate
from hwgen.synth import SynthError, synthesize
from hwgen.synth.table import overflow_text

AIM_MHZ = {"ice40-up5k": 48.0, "ecp5-85f": 125.0}
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "synth_sweep.json"

# Where a nextpnr cell name stops naming the design's signal and starts naming the packing.
_PACKING = re.compile(r"(_SB_|_TRELLIS_|_LUT4|_CCU2C|_MULT18X18D|_DP16KD|\$sb_io|\$tr_io|"
                      r"_DFFLC|_LC\.|\$nextpnr)")


def signal(cell: str | None) -> str:
    """The design signal of a nextpnr ``cell.port`` name (``sig_z.s1_TRELLIS_FF_Q.Q``
    -> ``sig_z.s1``)."""
    if not cell:
        return "-"
    match = _PACKING.search(cell)
    return cell[:match.start()] if match else cell.rsplit(".", 1)[0]


def gru_designs(lanes: list, weight_bits: int, work: Path) -> list:
    """(label, design folder) of the random GRU I=16, H=64 at each lane count."""
    ir = random_task_model("gru", 16, 64)
    x = smooth_inputs(4, 10, 16)
    qm = quantize_model(ir, x, QuantConfig(weight_bits=weight_bits, act_bits=8))
    xq = qm.quantize_inputs(x)
    return [(f"GRU I=16 H=64 w{weight_bits} P={p}",
             generate(qm, work / f"gru_i16_h64_w{weight_bits}_p{p}", lanes=p, inputs=xq))
            for p in lanes]


def bundled_design() -> tuple:
    """(label, folder) of the committed default design (what ``make demo`` generates)."""
    name = f"{flow.DEFAULT_MODEL}_p{flow.DEFAULT_LANES}"
    folder = ROOT / "rtl_out" / name
    if not (folder / "manifest.json").is_file():
        raise SystemExit(f"synth_sweep: {folder} is missing; run `hwgen demo --no-sim` first")
    return (f"{name} (default)", folder)


def run(label: str, design: Path, target: str, work: Path) -> dict:
    """One flow run, as a row of the table (tool files under ``work``)."""
    row = {"design": label, "target": target, "design_dir": str(design)}
    start = time.monotonic()
    out_dir = work / "synth" / f"{design.name}.{target}"
    try:
        report = synthesize(design, target, AIM_MHZ[target], out_dir=out_dir, progress=None)
    except SynthError as exc:
        row.update(error=str(exc), wall_s=round(time.monotonic() - start, 1))
        return row
    res = report["resources"]
    perf = report["performance"]
    fmax = report["fmax_mhz"]
    per_step = perf.get("per_step")
    cp = report["critical_path"]
    row.update(
        lut=res["LUT"]["used"], lut_placed=res["LUT"]["placed"], ff=res["FF"]["used"],
        dsp=res["DSP"]["used"], dsp_available=res["DSP"]["available"],
        bram=res["BRAM"]["used"], bram_available=res["BRAM"]["available"],
        spram=res.get("SPRAM", {}).get("used"), fits=report["fits"],
        overflow=[overflow_text(o) for o in report["overflow"]],
        dsp_mapping=(report["dsp_mapping"] or {}).get("strategy"),
        dsp_detail=(report["dsp_mapping"] or {}).get("detail"),
        fmax_mhz=fmax, aim_mhz=report["freq_constraint_mhz"], timing_met=report["timing_met"],
        cycles_per_step=per_step,
        latency_per_step_us=(per_step / fmax) if fmax and per_step else None,
        steps_per_s=(fmax * 1e6 / per_step) if fmax and per_step else None,
        critical_path=None if cp is None else {
            "from": signal(cp["start"]), "to": signal(cp["end"]), "start": cp["start"],
            "end": cp["end"], "delay_ns": cp["delay_ns"], "logic_ns": cp["logic_ns"],
            "routing_ns": cp["routing_ns"], "logic_levels": cp["logic_levels"],
            "from_clock": cp["from_clock"], "to_clock": cp["to_clock"]},
        # nextpnr-ice40 times a combinational SB_MAC16 as if clocked by its grounded CLK
        # pin: a path through it shows up in two halves, to and from "$PACKER_GND_NET".
        dsp_split_paths=[{"from": signal(p["start"]), "to": signal(p["end"]),
                          "delay_ns": p["delay_ns"], "logic_levels": p["logic_levels"]}
                         for p in report["critical_paths"]
                         if "PACKER_GND" in f"{p['from_clock']} {p['to_clock']}"],
        stage_s=report["stage_seconds"], wall_s=report["wall_seconds"])
    return row


def _cell(value, fmt="{}") -> str:
    return "-" if value is None else fmt.format(value)


def _fits(row: dict) -> str:
    return "yes" if row["fits"] else "NO " + ",".join(row["overflow"])


def format_rows(rows: list) -> str:
    # The fits column holds the overflow list, so its width follows the longest entry.
    fits_w = max([4] + [len(_fits(r)) for r in rows if "error" not in r])
    dw = max([6] + [len(r["design"]) for r in rows])
    head = (f"{'design':<{dw}} {'target':<10} {'LUT':>5} {'FF':>5} {'DSP':>6} {'BRAM':>5} "
            f"{'fits':<{fits_w}} {'DSP map':<10} {'Fmax':>5} {'aim':>4} {'cyc/step':>8} "
            f"{'us/step':>8} {'steps/s':>8} {'wall s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['design']:<{dw}} {r['target']:<10} ERROR {r['error']}")
            continue
        bram = (f"{r['bram']}/{r['spram']}" if r["spram"] is not None else f"{r['bram']}")
        lines.append(
            f"{r['design']:<{dw}} {r['target']:<10} {r['lut']:>5} {r['ff']:>5} "
            f"{r['dsp']:>2}/{r['dsp_available']:<3} {bram:>5} {_fits(r):<{fits_w}} "
            f"{_cell(r['dsp_mapping']):<10} {_cell(r['fmax_mhz'], '{:.1f}'):>5} "
            f"{r['aim_mhz']:>4g} {_cell(r['cycles_per_step'], '{:g}'):>8} "
            f"{_cell(r['latency_per_step_us'], '{:.2f}'):>8} "
            f"{_cell(r['steps_per_s'], '{:,.0f}'):>8} {r['wall_s']:>6.1f}")
    lines.append("")
    lines += ["BRAM: iCE40 EBR (4 kbit)/SPRAM (256 kbit), ECP5 DP16KD (18 kbit). LUT, FF: "
              "Yosys counts.",
              "DSP map (iCE40): dsp = all multipliers on SB_MAC16 (or no fallback, when "
              "another resource overflows);",
              "  dsp-widest = the widest multipliers on SB_MAC16, the rest in logic.",
              "Fmax from nextpnr (aim = --freq); us/step and steps/s at that Fmax; wall = the "
              "whole flow (Yosys, nextpnr, packer)."]
    lines.append("")
    lines.append("critical paths (nextpnr, register to register first):")
    for r in rows:
        cp = r.get("critical_path")
        if cp:
            lines.append(f"  {r['design']:<{dw}} {r['target']:<10} {cp['delay_ns']:6.2f} ns "
                         f"({cp['logic_ns']:.2f} logic + {cp['routing_ns']:.2f} routing, "
                         f"{cp['logic_levels']} levels): {cp['from']} -> {cp['to']}")
        for half in r.get("dsp_split_paths") or []:
            lines.append(f"  {'':<{dw + 11}} {half['delay_ns']:6.2f} ns ({half['logic_levels']} "
                         f"levels), a half-path at an SB_MAC16: {half['from']} -> "
                         f"{half['to']}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lanes", default="1,2,4,8")
    ap.add_argument("--targets", default=",".join(AIM_MHZ))
    ap.add_argument("--weight-bits", default="8,4",
                    help="weight widths of the GRU (8-bit weights overflow the UP5K's EBR)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the JSON goes")
    ap.add_argument("--keep", type=Path, help="keep the designs and tool files here")
    ap.add_argument("--no-bundled", action="store_true", help="skip the bundled design(s)")
    args = ap.parse_args(argv)
    lanes = [int(p) for p in args.lanes.split(",")]
    targets = [t.strip() for t in args.targets.split(",")]
    with tempfile.TemporaryDirectory(prefix="synth_sweep.") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        designs = [d for bits in args.weight_bits.split(",")
                   for d in gru_designs(lanes, int(bits), work)]
        if not args.no_bundled:
            designs.append(bundled_design())
        gen_s = time.monotonic() - t0
        print(f"generated {len(designs)} designs in {gen_s:.1f} s", flush=True)
        rows = []
        for label, design in designs:
            for target in targets:
                row = run(label, design, target, work)
                rows.append(row)
                state = row.get("error") or (f"fits={row['fits']} Fmax={row['fmax_mhz']}")
                print(f"  {label:<26} {target:<10} {state} ({row['wall_s']:.1f} s)", flush=True)
        total_s = time.monotonic() - t0
    print()
    print(format_rows(rows))
    print(f"\ntotal {total_s:.0f} s (design generation {gen_s:.0f} s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"aim_mhz": AIM_MHZ, "generation_s": round(gen_s, 1),
                                     "total_s": round(total_s, 1), "rows": rows},
                                    indent=2) + "\n")
    print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
