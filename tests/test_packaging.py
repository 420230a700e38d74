"""The installed package, away from the checkout: the wheel carries what `simulate` runs."""
import json
import os
import shutil
from pathlib import Path
import subprocess
import sys
import zipfile

from sim_standin import write_standin

ROOT = Path(__file__).resolve().parent.parent

_SIMULATE = """
import json, sys
import hwgen
from hwgen.sim import simulate
assert hwgen.__file__.startswith(sys.argv[2]), hwgen.__file__
r = simulate(sys.argv[1], max_sequences=5)
print(json.dumps({"passed": r.passed, "compared": r.compared, "expected": r.expected,
                  "hwgen": hwgen.__file__}))
"""


def test_wheel_simulates_outside_the_checkout(tmp_path):
    src, wheels = tmp_path / "src", tmp_path / "wheels"    # built from a copy: no build/ here
    shutil.copytree(ROOT / "hwgen", src / "hwgen",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(src)], check=True,
                   cwd=tmp_path)
    (wheel,) = wheels.glob("hwgen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hwgen/testbench/test_accelerator.py" in names
    assert "hwgen/testbench/cocotb_board_uart.py" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(site), str(wheel)], check=True, cwd=tmp_path)
    design = write_standin(tmp_path / "work" / "standin", "every", sequences=8)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", _SIMULATE, str(design), str(site)],
                         cwd=tmp_path / "work", env=env, check=True, capture_output=True,
                         text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["passed"] and result["compared"] == result["expected"] == 5 * 6 * 2 * 2
