"""What the ``hwgen synth`` and ``hwgen build`` commands call: run and print.

Errors are raised, never printed here: `hwgen.cli.main` prints them as one line and turns
them and the results into the exit codes its docstring lists.
"""
from __future__ import annotations

from .errors import SynthError
from .flow import print_progress, synthesize
from .table import format_table
from .targets import TARGETS


def target_names(target) -> list[str]:
    """``"a,b"``, ``"all"`` or a list of names -> the target names.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    names = [t.strip() for t in (target.split(",") if isinstance(target, str) else target)]
    if names == ["all"]:
        return sorted(TARGETS)
    for name in names:
        if name not in TARGETS:
            raise ValueError(f"Unknown target {name!r}; known targets: "
                             f"{', '.join(sorted(TARGETS))}, all")
    return names


def synth_command(design_dir, target, freq: float | None = None, seeds=(1,),
                  router: str | None = None, placer: str | None = None) -> bool:
    """Synthesize ``design_dir`` for ``target`` and print the table.

    Parameters
    ----------
    design_dir : the design folder.
    target : a target name, several separated by commas (or a list), or ``"all"``.
    freq : the clock aim in MHz (nextpnr ``--freq``); each target's default if None.
    seeds : nextpnr placement seeds (the fastest is kept, every one's Fmax printed).
    router : nextpnr's router (``"router2"`` for large designs); its default if None.
    placer : nextpnr's placer (``"static"`` for the largest designs); its default if None.

    Returns
    -------
    bool
        Whether the design fits every target.

    Raises
    ------
    ValueError
        For an unknown target, before any work.
    DesignFolderError
        For a folder that breaks the contract.
    SynthError
        When a tool fails. With several targets the others are still run (each failure
        printed under its target) and one SynthError naming the failed targets ends it.
    """
    names = target_names(target)
    fits, failed = True, []
    for name in names:
        print(f"{name}:", flush=True)
        try:
            report = synthesize(design_dir, name, freq, progress=print_progress, seeds=seeds,
                                router=router, placer=placer)
        except SynthError as exc:
            if len(names) == 1:
                raise
            print(f"  failed: {exc}\n", flush=True)
            failed.append(name)
            continue
        print(format_table(report))
        print(f"  report: {report['out_dir']}/report.json\n", flush=True)
        fits = fits and report["fits"]
    if failed:
        raise SynthError("synth", f"failed for {', '.join(failed)} (see above)")
    return fits


def build_command(design_dir, board: str, out_dir=None) -> None:
    """Build the bitstream of ``design_dir`` behind the UART link of ``board`` and print
    the result (`hwgen.boards.build_bitstream` returns it).

    Raises
    ------
    BoardError, DesignFolderError, SynthError
        For an unknown board, a bad design folder, a failed tool.
    """
    from ..boards import build_bitstream, format_build

    result = build_bitstream(design_dir, board, out_dir, progress=print_progress)
    print(format_build(result))
