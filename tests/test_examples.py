"""The Python example runs end to end: own nn.GRU -> import -> quantize -> design folder."""
import importlib.util
import json
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "own_gru.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("own_gru", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_gru_example(tmp_path):
    r = _load_example().run(tmp_path / "sine_gru_p4", lanes=4, sequences=5)
    assert r["import_error"] < 1e-4                   # the import matches PyTorch
    assert r["float_accuracy"] > 0.7                  # it learned (chance is 1/3)
    assert abs(r["int_accuracy"] - r["float_accuracy"]) < 0.02  # 8-bit costs < 2 points
    manifest = json.loads((r["design"] / "manifest.json").read_text())
    assert manifest["lanes"] == 4 and manifest["cell"] == "gru"
    assert (r["design"] / "vectors.npz").is_file()
