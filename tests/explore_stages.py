"""Stand-in stages for tests/test_explore.py: imported by the Dask workers by name.

`fake_synth` returns resources and speed from the design's manifest (lanes, weight width,
cycle model) in microseconds instead of running Yosys and nextpnr.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def fake_synth(design, target, seeds, out_dir, timeout):
    m = json.loads((Path(design["path"]) / "manifest.json").read_text())
    lanes, bits = m["lanes"], m["memories"]["weights"]["lane_width"]
    cap = {"LUT": 5000, "FF": 5000}
    used = {"LUT": 300 * lanes + 20 * bits, "FF": 100 * lanes}
    per_step = m["cycles"]["per_step"]
    fmax = 60.0 if target.startswith("ice40") else 90.0
    return {"resources": {r: {"used": used[r], "available": cap[r],
                              "utilization": used[r] / cap[r]} for r in cap},
            "fits": lanes < 4, "overflow": [] if lanes < 4 else
            [{"resource": "LUT", "used": 6000, "available": 5000, "source": "yosys"}],
            "fmax_mhz": fmax, "seed": seeds[0],
            "performance": {"per_step": per_step, "sequences_per_s": fmax * 1e6 / per_step,
                            "latency_per_sequence_us": per_step / fmax}}


def failing_synth(design, target, seeds, out_dir, timeout):
    """Fails for one lane, as a tool would."""
    if '"lanes": 1,' in (Path(design["path"]) / "manifest.json").read_text():
        raise RuntimeError("nextpnr: place and route failed (exit code 1)")
    return fake_synth(design, target, seeds, out_dir, timeout)


def killing_synth(design, target, seeds, out_dir, timeout):
    """Kills its worker process the first time it runs in a sweep (a marker file in the
    sweep's folder says it has), then works."""
    marker = Path(out_dir).parents[2] / "killed_once"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return fake_synth(design, target, seeds, out_dir, timeout)
    os.close(fd)
    os._exit(1)


def fake_sim(design):
    """A simulation that finds a mismatch in the 4-bit designs."""
    bad = '"lane_width": 4' in (Path(design["path"]) / "manifest.json").read_text()
    return {"passed": not bad, "mismatches": int(bad), "compared": 10}
