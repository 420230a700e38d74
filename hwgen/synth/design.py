"""Read a design folder: ``manifest.json`` and the Verilog it names."""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

from .errors import DesignFolderError

#: Files beside the Verilog that a ``$readmemh``/``$readmemb`` may load at synthesis.
DATA_SUFFIXES = (".hex", ".mem", ".bin", ".init")


@dataclass(frozen=True)
class Design:
    """A design folder, checked against the contract.

    Attributes
    ----------
    path : the folder.
    manifest : the parsed ``manifest.json``.
    name, top : design name and Verilog top module.
    verilog : the Verilog files, as paths.
    in_width, out_width : signed data widths of the input and output elements.
    """

    path: Path
    manifest: dict
    name: str
    top: str
    verilog: tuple
    in_width: int
    out_width: int

    @property
    def in_payload_bits(self) -> int:
        """Bits of ``i__payload``: data, ``step_end``, ``seq_end``."""
        return self.in_width + 2

    @property
    def out_payload_bits(self) -> int:
        """Bits of ``o__payload``: data, ``last``."""
        return self.out_width + 1

    @property
    def data_files(self) -> tuple:
        """Memory-initialisation files of the folder (loaded by the Verilog, if at all)."""
        return tuple(sorted(p for p in self.path.iterdir()
                            if p.is_file() and p.suffix in DATA_SUFFIXES))

    def port_bits(self) -> int:
        """Top-level pins the bare core needs: clk, rst, both streams."""
        return 2 + (self.in_payload_bits + 2) + (self.out_payload_bits + 2)


def _need(mapping: dict, key: str, where: str):
    if key not in mapping:
        raise DesignFolderError(f"manifest.json has no {where}{key!r}")
    return mapping[key]


def load_design(design_dir) -> Design:
    """Load and check the design folder ``design_dir``.

    Raises
    ------
    DesignFolderError
        When the folder, its manifest, a required key or a Verilog file is missing.
    """
    path = Path(design_dir)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise DesignFolderError(f"{path} is not a design folder: no manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise DesignFolderError(f"{manifest_path} is not valid JSON: {exc}") from None
    iface = _need(manifest, "interface", "")
    top = _need(iface, "top", "interface.")
    files = _need(iface, "verilog", "interface.")
    verilog = tuple(path / f for f in files)
    for f in verilog:
        if not f.is_file():
            raise DesignFolderError(f"Verilog file {f} named by the manifest does not exist")
    widths = []
    for key in ("in_width", "out_width"):
        value = _need(iface, key, "interface.")
        if not isinstance(value, int) or value < 1:
            raise DesignFolderError(f"interface.{key} must be a positive integer, not {value!r}")
        widths.append(value)
    return Design(path=path, manifest=manifest, name=manifest.get("name", path.name), top=top,
                  verilog=verilog, in_width=widths[0], out_width=widths[1])
