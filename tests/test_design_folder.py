"""The design-folder contract: sealed on generation, refused when edited, replaced safely."""
import json
import os
from pathlib import Path
import shutil

import numpy as np
import pytest

from conftest import make_model
from hwgen.design_folder import (DesignFolderError, build_dir, build_root, file_sha256,
                                 load_manifest, seal)
from hwgen.frontend import from_torch
from hwgen.quant import QuantConfig, quantize_model
from hwgen.rtl import emit
from hwgen.rtl.emit import folder_digest, generate


@pytest.fixture(scope="module")
def qmodel():
    ir = from_torch(make_model("gru", input_size=3, hidden=5, out=2))
    x = np.random.default_rng(0).normal(size=(16, 4, 3))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=6, act_bits=8))
    return qm, qm.quantize_inputs(x[:3])


@pytest.fixture
def design(qmodel, tmp_path):
    qm, xq = qmodel
    return generate(qm, tmp_path / "rtl" / "tiny", lanes=2, inputs=xq)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_generated_folder_is_sealed(design):
    manifest = load_manifest(design)
    assert sorted(manifest["files"]) == sorted(p.name for p in design.iterdir()
                                               if p.name != "manifest.json")
    assert "weights.hex" in manifest["files"] and "vectors.npz" in manifest["files"]
    assert design.stat().st_mode & 0o777 == 0o777 & ~_umask()   # not mkdtemp's 0700


def test_flipped_weight_digit_is_refused_everywhere(design):
    text = (design / "weights.hex").read_text()
    (design / "weights.hex").write_text(("1" if text[0] == "0" else "0") + text[1:])
    from hwgen.boards import build_bitstream
    from hwgen.sim import simulate
    from hwgen.synth import synthesize
    for run in (lambda: simulate(design), lambda: synthesize(design, "ice40-up5k"),
                lambda: build_bitstream(design, "icebreaker")):
        with pytest.raises(DesignFolderError, match="weights.hex differs from the generated"):
            run()
    assert not build_root(design).exists()          # refused before any tool ran


def test_seal_then_edit_the_manifest(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.v").write_text("module a; endmodule\n")
    manifest = {"name": "a", "interface": {"top": "a", "verilog": ["a.v"], "in_width": 8,
                                           "out_width": 8},
                "sizes": {"input_size": 1, "output_size": 1}, "head_mode": "last"}
    seal(d, manifest)
    assert load_manifest(d)["files"] == {"a.v": file_sha256(d / "a.v")}
    m = json.loads((d / "manifest.json").read_text())
    m["interface"]["in_width"] = 9
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DesignFolderError, match="manifest.json was edited after generation"):
        load_manifest(d)
    (d / "manifest.json").write_text(json.dumps(manifest))         # never sealed
    with pytest.raises(DesignFolderError, match="records no file digests"):
        load_manifest(d)
    m["interface"]["in_width"] = 0
    seal(d, m)
    with pytest.raises(DesignFolderError, match="interface.in_width must be a positive"):
        load_manifest(d)


def test_build_products_live_beside_the_folder(design):
    out = build_dir(design, "synth", "ecp5-85f")
    assert out == design.parent / "tiny.build" / "synth" / "ecp5-85f"
    assert design not in out.parents


def _regenerate(qmodel, design):
    qm, xq = qmodel
    return generate(qm, design, lanes=1, inputs=xq)


def _siblings(design):
    return sorted(p.name for p in design.parent.iterdir())


def test_failed_generation_keeps_the_old_design(qmodel, design, monkeypatch):
    before = folder_digest(design)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt              # Ctrl-C while the new folder is written
    monkeypatch.setattr(emit, "run_int", fail)
    with pytest.raises(KeyboardInterrupt):
        _regenerate(qmodel, design)
    assert folder_digest(design) == before and _siblings(design) == ["tiny"]


def test_failed_swap_restores_the_old_design(qmodel, design, monkeypatch):
    before = folder_digest(design)
    real = os.replace

    def replace(src, dst):
        if Path(dst) == design and ".old." not in Path(src).name:
            raise OSError("disk full")      # the new folder cannot move in
        return real(src, dst)
    monkeypatch.setattr(emit.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        _regenerate(qmodel, design)
    assert folder_digest(design) == before and _siblings(design) == ["tiny"]


@pytest.mark.parametrize("failure", [PermissionError("undeletable"), KeyboardInterrupt()])
def test_old_design_that_cannot_be_removed(qmodel, design, monkeypatch, failure):
    """The new design is whole in place; the old one is set aside, never half of either."""
    real = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if ".old." in Path(path).name and not kwargs.get("ignore_errors"):
            raise failure
        return real(path, *args, **kwargs)
    monkeypatch.setattr(emit.shutil, "rmtree", rmtree)
    if isinstance(failure, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            _regenerate(qmodel, design)
    else:
        with pytest.warns(UserWarning, match="previous design was kept at"):
            _regenerate(qmodel, design)
    assert load_manifest(design)["lanes"] == 1                   # the new one, whole
    (old,) = [p for p in design.parent.iterdir() if ".old." in p.name]
    assert load_manifest(old)["lanes"] == 2                       # the old one, whole


def test_a_folder_that_is_not_a_design_is_never_replaced(qmodel, tmp_path):
    qm, xq = qmodel
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(DesignFolderError, match="mine exists and is not a design folder"):
        generate(qm, mine, lanes=1, inputs=xq)
    assert (mine / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
