"""Figures: written whole as PNG, refused before any work on a bad path."""
import pytest

from hwgen.cli import main
from hwgen.delta import DeltaPoint
from hwgen.plots import PlotError, delta_figure, quantization_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROWS = [{"scheme": "float32", "weight_bits": 32, "metric": 97.0, "weight_kbit": None,
         "reduction": 0.0}] + [
    {"scheme": scheme, "weight_bits": bits, "metric": 97.0 - (8 - bits) * k,
     "weight_kbit": bits * 5.0, "reduction": 1 - bits / 32}
    for bits in (4, 8, 16) for scheme, k in (("calibrated", 0.1), ("global", 5.0))]


def test_figures_are_png(tmp_path):
    q = quantization_figure(ROWS, "accuracy %", "toy", tmp_path / "q.png")
    points = [DeltaPoint([(t, t)], 97.0 - t / 4, t / 40, 1 - t / 40) for t in (0, 4, 8, 16)]
    d = delta_figure(points, 97.0, "accuracy %", tmp_path / "d.png", points[2], 1.0)
    for path in (q, d):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "q.png"]  # no temporaries


@pytest.mark.parametrize("name,message", [("q.svg", "must end in .png"),
                                          ("missing/q.png", "no such folder")])
def test_bad_figure_paths(tmp_path, name, message):
    with pytest.raises(PlotError, match=message):
        quantization_figure(ROWS, "accuracy %", "toy", tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_bad_plot_path_before_working(tmp_path, capsys):
    assert main(["delta", "--plot", str(tmp_path / "no" / "d.png")]) == 2
    err = capsys.readouterr()
    assert "hwgen: error: no such folder for the figure" in err.err and err.out == ""
