"""The open-source FPGA flow: Yosys, nextpnr and bitstream packers from PyPI (YoWASP).

:func:`synthesize` runs a design folder through one target of :data:`TARGETS` and
reports resources, fit, Fmax, the critical path and the latency the manifest's cycle
counts give at that Fmax. This package does not import torch.
"""
from .design import Design, load_design
from .errors import DesignFolderError, SynthError
from .flow import print_progress, synthesize
from .table import format_table
from .targets import TARGETS, Target, get_target

__all__ = ["Design", "DesignFolderError", "SynthError", "TARGETS", "Target", "format_table",
           "get_target", "load_design", "print_progress", "synthesize"]
