"""Recurrent cells as data: the registry of `Cell` descriptions every layer of hwgen reads.

Adding a cell is one file here (a `Cell` subclass; see docs/cells.md) and one line below.
"""
from __future__ import annotations

from .base import Block, Cell, UnknownCellError
from .gru import GRU
from .ligru import LiGRU
from .lstm import LSTM
from .sru import SRU

CELLS: dict[str, Cell] = {}


def register(cell: Cell) -> Cell:
    """Add `cell` to the registry under its name (replacing one of the same name)."""
    CELLS[cell.name] = cell
    return cell


def get_cell(name: str) -> Cell:
    """The registered cell called `name`.

    Raises
    ------
    UnknownCellError
        No registered cell has that name (the message lists the known ones).
    """
    cell = CELLS.get(name) if isinstance(name, str) else None
    if cell is None:
        raise UnknownCellError(f"Unknown cell {name!r}; known cells: {', '.join(CELLS)}")
    return cell


def cell_for_torch_module(module) -> Cell | None:
    """The registered cell whose torch module class `module` is an instance of, or None."""
    for cell in CELLS.values():
        cls = cell.torch_class()
        if cls is not None and isinstance(module, cls):
            return cell
    return None


def torch_labels() -> list[str]:
    """The torch modules the registered cells import, as messages name them."""
    return [cell.torch_label for cell in CELLS.values() if cell.torch_module]


register(LSTM())
register(GRU())
register(SRU())
register(LiGRU())

__all__ = ["Block", "CELLS", "Cell", "UnknownCellError", "cell_for_torch_module", "get_cell",
           "register", "torch_labels"]
