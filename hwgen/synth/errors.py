"""Named errors of the FPGA flow."""
from __future__ import annotations

from ..design_folder import DesignFolderError  # one error type, re-exported

__all__ = ["DesignFolderError", "SynthError"]


class SynthError(RuntimeError):
    """An FPGA tool failed.

    Parameters
    ----------
    stage : the flow stage that failed (``"yosys"``, ``"nextpnr"``, ``"pack"``, ...).
    message : what went wrong, in one line.
    log_tail : the last lines of the tool's log.
    log_path : where the whole log is, if it was written to a file.

    Attributes
    ----------
    stage, log_tail, log_path : as given.
    """

    def __init__(self, stage: str, message: str, log_tail: str = "", log_path=None):
        self.stage = stage
        self.log_tail = log_tail
        self.log_path = log_path
        text = f"{stage}: {message}"
        if log_path is not None:
            text += f" (log: {log_path})"
        if log_tail:
            text += "\n" + log_tail
        super().__init__(text)
