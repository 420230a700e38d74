"""Run every benchmark and print its figures (`make bench`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["ref_throughput.py", "rtl_cycles.py", "delta_table.py", "cells.py", "speech.py",
           "synth_sweep.py", "ternary.py"]

if __name__ == "__main__":
    failed = []
    for name in BENCHES:
        if not (HERE / name).exists():
            continue
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, str(HERE / name)], cwd=HERE) != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
