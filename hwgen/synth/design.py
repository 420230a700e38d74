"""Read a design folder: ``manifest.json`` and the Verilog it names."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..design_folder import load_manifest
from ..interface import input_payload, output_payload

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
        """Bits of ``i__payload`` (see `hwgen.interface`)."""
        return input_payload(self.in_width).bits

    @property
    def out_payload_bits(self) -> int:
        """Bits of ``o__payload`` (see `hwgen.interface`)."""
        return output_payload(self.out_width).bits

    @property
    def weight_beat_bits(self) -> int:
        """Bits of ``weights__payload``, the weight-load stream's (0: the design has none,
        its weights are in ROM)."""
        return (self.manifest["interface"].get("weights") or {}).get("beat_width", 0)

    @property
    def data_files(self) -> tuple:
        """Memory-initialisation files of the folder (loaded by the Verilog, if at all)."""
        return tuple(sorted(p for p in self.path.iterdir()
                            if p.is_file() and p.suffix in DATA_SUFFIXES))

    def port_bits(self) -> int:
        """Top-level pins the bare core needs: clk, rst, its streams."""
        weights = self.weight_beat_bits + 2 if self.weight_beat_bits else 0
        return 2 + (self.in_payload_bits + 2) + (self.out_payload_bits + 2) + weights


def load_design(design_dir) -> Design:
    """Load the design folder ``design_dir``, checked by `hwgen.design_folder.load_manifest`.

    Raises
    ------
    DesignFolderError
        When the folder or its manifest is missing, a file was edited or a key is missing.
    """
    path = Path(design_dir)
    manifest = load_manifest(path)
    iface = manifest["interface"]
    return Design(path=path, manifest=manifest, name=manifest["name"], top=iface["top"],
                  verilog=tuple(path / f for f in iface["verilog"]),
                  in_width=iface["in_width"], out_width=iface["out_width"])
