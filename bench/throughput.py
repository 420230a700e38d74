"""Throughput: step utilization against lanes, and a table beside published delta-RNN accelerators.

1. Utilization sweep, from the cycle model (`hwgen.rtl.cycles`, equal to simulation: tests):
   GRU I=16 H=64 and GRU I=40 H=256 at P = 1 ... 128 lanes, with one element-wise unit and
   with the default E units (`plan.hidden_activate_units`); docs/figures/utilization.png.
2. Throughput table: per design and target, Fmax from `hwgen synth` (run by this script with
   --synth / --big; otherwise read from bench/throughput_fpga.json, written by an earlier run),
   cycles per step, steps/s, dense GMAC/s and effective GOp/s as the delta-RNN papers count it:
   2 x the dense MACs of a step (multiply and add, skipped ones included) x steps/s. The bundled
   designs' cycles are measured in simulation (cocotb + Verilator, 0 mismatches required). The
   large design is `speech_gru256` (GRU I=40 H=256 trained on the speech task, 8-bit) at 64
   lanes on the ECP5-85F, dense (cycle model) and as a delta network with thresholds chosen
   within 1 point on the valid voices (cycles: the mean over the test voices' steps of
   `cycles.delta_step_cycles`, equal to simulation; bench/speech_big.py), and dense at 128
   lanes with 4-bit weights (two lanes a multiplier). Published figures are printed as
   published.

    python bench/throughput.py            # sweep, table from stored synthesis results
    python bench/throughput.py --synth    # also re-run synthesis of the bundled designs
    python bench/throughput.py --big      # and/or of the big designs (router2, hours)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from common import random_task_model, smooth_inputs

from hwgen.quant import QuantConfig, quantize_model
from hwgen.rtl.cycles import cycle_model
from hwgen.rtl.plan import make_plan

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "throughput_fpga.json"  # synthesis results, kept in the repository
FIGURE = ROOT / "docs" / "figures" / "utilization.png"
SWEEP_LANES = (1, 2, 4, 8, 16, 32, 64, 128)
SIZES = ((16, 64), (40, 256))

# (design, lanes, target): the rows of the table; rtl_out designs are the bundled ones
DESIGNS = [("digits_lstm_p2", 2, "ice40-up5k"), ("digits_lstm_p2_delta", 2, "ice40-up5k"),
           ("digits_lstm_p2", 2, "ecp5-85f"), ("digits_lstm_p2_delta", 2, "ecp5-85f")]
SEEDS = (1, 2, 3, 4)  # placement seeds: Fmax is the best of them
# speech_gru256 (GRU I=40 H=256) at 64 lanes, dense and delta: synthesized with --big, one
# seed and nextpnr's router2 (router1 had not routed 32 lanes in 40 minutes)
BIG_LANES = 64
# and dense at 128 lanes with 4-bit weights (within a point of float on the speech task, as
# 8-bit): two lanes share a multiplier (`mac_array.pairs_products`), 74 MULT18X18D, not 138
BIG_ROWS = [("speech_gru256_p64", BIG_LANES, "ecp5-85f"),
            ("speech_gru256_p64_delta", BIG_LANES, "ecp5-85f"),
            ("speech_gru256_w4_p128", 128, "ecp5-85f")]
BIG_NAMES = {name for name, _, _ in BIG_ROWS}
BIG_WEIGHT_BITS = {"speech_gru256_w4_p128": 4}   # the others: speech_big.CONFIG's 8
# nextpnr's static placer for the 128-lane row (heap's placement of it did not route), and
# its seeds, its lanes pinned by `hwgen.synth.floorplan`: 84.3 and 102.0 MHz at fa917e6 (102.6
# and 96.3 at 028bddf; 85.2, 89.2, 83.9 at d413cad; 59.1, 80.4, 72.9 at 0760222 unpinned)
BIG_PLACERS = {"speech_gru256_w4_p128": "static"}
BIG_SEEDS = {"speech_gru256_w4_p128": (1, 2, 3)}   # the others: seed 1

PUBLISHED = [  # as published; not measured here
    ("EdgeDRNN (Gao et al. 2020)", "Zynq-7007S", "8 PEs, 2-layer GRU, 5 M params",
     "~0.5 ms/step", "20.2 GOp/s effective, batch 1"),
    ("DeltaRNN (Gao et al. 2018)", "Zynq-7100", "GRU, 5.7x from sparsity", "",
     "1.2 TOp/s effective"),
    ("Spartus (Gao et al. 2022)", "Zynq UltraScale+", "LSTM, spatio-temporal sparsity", "",
     "9.4 TOp/s effective"),
]


def gru_qmodel(inputs: int, hidden: int):
    ir = random_task_model("gru", inputs, hidden)
    x = smooth_inputs(64, 20, inputs)
    return quantize_model(ir, x, QuantConfig(weight_bits=8, act_bits=8)), x


def utilization_sweep() -> dict:
    """{(I, H): [(P, E, cycles per step, utilization, E=1 cycles, E=1 utilization)]}."""
    out = {}
    for inputs, hidden in SIZES:
        qm, _ = gru_qmodel(inputs, hidden)
        rows = []
        for lanes in SWEEP_LANES:
            plan = make_plan(qm, lanes)
            model = cycle_model(plan, inputs)
            one = cycle_model(make_plan(qm, lanes, units=1), inputs)
            rows.append((lanes, plan.units, model["per_step"], model["step_utilization"],
                         one["per_step"], one["step_utilization"]))
        out[(inputs, hidden)] = rows
    return out


def plot_sweep(sweep: dict) -> None:
    from hwgen.plots import plt, _save
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (inputs, hidden), rows in sweep.items():
        line, = ax.plot([r[0] for r in rows], [r[3] for r in rows], marker="o",
                        label=f"GRU I={inputs} H={hidden}, default E units")
        ax.plot([r[0] for r in rows], [r[5] for r in rows], marker="x", ls="--",
                color=line.get_color(), label=f"GRU I={inputs} H={hidden}, one unit")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("MAC lanes P")
    ax.set_ylabel("step utilization (MACs / P / cycles)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("step utilization against MAC lanes (cycle model = simulation)")
    _save(fig, FIGURE)


def big_figures() -> dict:
    """speech_gru256's figures at BIG_LANES (bench/speech_big.py): thresholds, cycles."""
    from speech_big import big_delta_figures
    return big_delta_figures(BIG_LANES)


def design_folder(name: str, lanes: int, work: Path, figures: dict | None) -> Path:
    if name not in BIG_NAMES:
        return ROOT / "rtl_out" / name
    from hwgen import flow
    task, qm = big_model(name)
    delta = figures["thresholds"] if name.endswith("_delta") else None
    return flow.generate_design(task, qm, work / name, lanes, delta=delta, sequences=4)


def big_model(name: str):
    """(task, quantized model) of a big row: speech_gru256, its weights at the row's width."""
    from hwgen import flow
    from speech_big import CONFIG, MODEL
    task = flow.load_task(MODEL)
    bits = BIG_WEIGHT_BITS.get(name, CONFIG.weight_bits)
    return task, flow.quantize(task, QuantConfig(weight_bits=bits, act_bits=CONFIG.act_bits))


def synth_result(name: str, lanes: int, target: str, work: Path, run: bool,
                 figures: dict | None = None) -> dict | None:
    """Fmax and resources of a design on a target: synthesized now, or stored."""
    key = f"{name} {target}"
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if run:
        from hwgen.synth import print_progress, synthesize
        folder = design_folder(name, lanes, work, figures)
        big = name in BIG_NAMES
        report = synthesize(folder, target, out_dir=work / f"synth_{name}_{target}",
                            progress=print_progress if big else None, pack=False,
                            seeds=BIG_SEEDS.get(name, (1,)) if big else SEEDS,
                            router="router2" if big else None,
                            placer=BIG_PLACERS.get(name))
        # read again: another run may have stored its design meanwhile
        stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        stored[key] = {"lanes": lanes, "fits": report["fits"], "fmax_mhz": report["fmax_mhz"],
                       "fmax_by_seed": report.get("fmax_by_seed"), "commit": head_commit(),
                       "router": report.get("router"), "placer": report.get("placer"),
                       "memory_mapping": (report.get("memory_mapping") or {}).get("strategy"),
                       "critical_path": report.get("critical_path"),
                       "floorplan": report.get("floorplan"),
                       "resources": {k: v.get("used") for k, v in report["resources"].items()}}
        RESULTS.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    return stored.get(key)


def head_commit() -> str:
    """The commit whose RTL a stored synthesis result is of (short hash)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True, check=True).stdout.strip()


def measured_cycles_per_step(name: str) -> float:
    """Cycles per step of a bundled design, measured in simulation (bit-exact required):
    back-to-back sequences, the head's share included."""
    from hwgen.sim import simulate
    result = simulate(ROOT / "rtl_out" / name, stall_in=0.0, stall_out=0.0)
    if not result.passed:
        raise SystemExit(f"{name}: {result.mismatches} mismatches in simulation")
    return result.step_period


def design_cycles(name: str, lanes: int, figures: dict | None) -> tuple[float, int, int]:
    """(cycles per step, dense MACs per step, cycle-model cycles per step)."""
    if name in BIG_NAMES:
        if name.endswith("_delta"):   # the mean over the test steps; every column firing
            return (figures["delta_cycles_per_step"], figures["macs_per_step"],
                    figures["delta_cycles_all_fire"])
        if name in BIG_WEIGHT_BITS or lanes != figures["lanes"]:   # not speech_big's design
            _, qm = big_model(name)
            model = cycle_model(make_plan(qm, lanes), qm.input_size, qm.head_mode)
            return model["per_step"], model["macs_per_step"], model["per_step"]
        return (figures["dense_cycles_per_step"], figures["macs_per_step"],
                figures["dense_cycles_per_step"])
    model = json.loads((ROOT / "rtl_out" / name / "manifest.json").read_text())["cycles"]
    return measured_cycles_per_step(name), model["macs_per_step"], model["per_step"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", action="store_true", help="re-run synthesis for the table")
    ap.add_argument("--big", action="store_true",
                    help="re-run synthesis of the big designs (router2, hours)")
    args = ap.parse_args()

    sweep = utilization_sweep()
    print("step utilization from the cycle model (= simulation), 8-bit GRU, one layer;")
    print("E element-wise units (the default: the fewest that hide ACTIVATE under the next "
          "step's input columns, at most P/8) against one unit")
    print(f"{'P':>5}" + "".join(f" | I={i} H={h}: {'E':>3} {'cycles':>6} {'util':>5} "
                                f"{'E=1 cyc':>7} {'util':>5}" for i, h in SIZES))
    for k, lanes in enumerate(SWEEP_LANES):
        print(f"{lanes:>5}" + "".join(
            f" | {'':>12}{r[1]:>3} {r[2]:>6} {r[3]:>5.3f} {r[4]:>7} {r[5]:>5.3f}"
            for r in (sweep[s][k] for s in SIZES)))
    plot_sweep(sweep)
    print(f"figure: {FIGURE.relative_to(ROOT)}")

    figures = big_figures()
    print("\nthroughput: Fmax from hwgen synth (best of the seeds stored; 'RTL of': the commit "
          "synthesized); cycles per step measured in simulation (bundled) or from the cycle "
          f"model ({figures['model']}: dense; delta, the mean over the test voices' steps with "
          f"thresholds {figures['thresholds']}, {100 * figures['macs_eliminated']:.1f} % of the "
          f"MACs skipped, accuracy {figures['delta_test']:.2f} % against "
          f"{figures['dense_test']:.2f} % dense); GOp/s = 2 x dense MACs x steps/s")
    print(f"{'design':<24} {'target':<11} {'P':>4} {'Fmax':>6} {'cyc/step':>9} {'dense':>6} "
          f"{'steps/s':>9} {'dense GMAC/s':>12} {'eff GOp/s':>9} {'RTL of':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, lanes, target in DESIGNS + BIG_ROWS:
            big = name in BIG_NAMES
            synth = synth_result(name, lanes, target, Path(tmp),
                                 args.big if big else args.synth, figures)
            if synth is None or not synth["fits"]:
                print(f"{name:<24} {target:<11} {lanes:>4} "
                      f"{'no stored result' if synth is None else 'does not fit'}")
                continue
            cycles, macs, dense = design_cycles(name, lanes, figures)
            hz = synth["fmax_mhz"] * 1e6
            steps = hz / cycles
            print(f"{name:<24} {target:<11} {lanes:>4} {synth['fmax_mhz']:>6.1f} "
                  f"{cycles:>9.0f} {dense:>6} {steps:>9,.0f} {macs * hz / dense / 1e9:>12.3f} "
                  f"{2 * macs * steps / 1e9:>9.3f} {synth.get('commit', '-'):>8}")
    print("\npublished (not measured here):")
    for name, device, what, latency, figure in PUBLISHED:
        print(f"  {name:<28} {device:<17} {what:<34} {latency:<13} {figure}")


if __name__ == "__main__":
    main()
