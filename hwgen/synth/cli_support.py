"""What the ``hwgen synth`` and ``hwgen build`` commands call: run, print, return an exit code.

Exit codes: 0 done (and the design fits), 1 an error (tool failure, bad design folder,
unknown target or board; the message and the tool's log tail are printed, no traceback),
2 the design does not fit the device.
"""
from __future__ import annotations

import sys

from .errors import DesignFolderError, SynthError
from .flow import print_progress, synthesize
from .table import format_table
from .targets import TARGETS

EXIT_OK, EXIT_ERROR, EXIT_NO_FIT = 0, 1, 2


def _error(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_ERROR


def synth_command(design_dir, target: str, freq: float | None = None, seeds=(1,)) -> int:
    """Synthesize ``design_dir`` for ``target`` and print the table.

    Parameters
    ----------
    design_dir : the design folder.
    target : a target name, several separated by commas, or ``"all"``.
    freq : the clock aim in MHz (nextpnr ``--freq``); each target's default if None.
    seeds : nextpnr placement seeds (the fastest is kept, every one's Fmax printed).

    Returns
    -------
    int
        The exit code (see the module docstring); the worst over the targets.
    """
    names = sorted(TARGETS) if target == "all" else [t.strip() for t in target.split(",")]
    code = EXIT_OK
    for name in names:
        if name not in TARGETS:
            return _error(ValueError(f"Unknown target {name!r}; known targets: "
                                     f"{', '.join(sorted(TARGETS))}, all"))
        print(f"{name}:", flush=True)
        try:
            report = synthesize(design_dir, name, freq, progress=print_progress,
                                seeds=seeds)
        except (SynthError, DesignFolderError) as exc:
            code = max(code, _error(exc))
            continue
        print(format_table(report))
        print(f"  report: {report['out_dir']}/report.json\n", flush=True)
        if not report["fits"]:
            code = max(code, EXIT_NO_FIT)
    return code


def build_command(design_dir, board: str, out_dir=None) -> int:
    """Build the bitstream of ``design_dir`` behind the UART link of ``board``.

    Returns
    -------
    int
        The exit code (see the module docstring).
    """
    from ..boards import BoardError, build_bitstream, format_build

    try:
        result = build_bitstream(design_dir, board, out_dir, progress=print_progress)
    except (SynthError, DesignFolderError, BoardError) as exc:
        return _error(exc)
    print(format_build(result))
    return EXIT_OK
