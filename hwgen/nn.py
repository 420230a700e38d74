"""PyTorch modules hwgen understands: a recurrent stack followed by a Linear head.

`RecurrentClassifier` is the container the bundled models use and the frontend accepts.
`LiGRU` (defined in `hwgen.nn_ligru`) is the light GRU, named as speechbrain's.
`SRU` (defined in `hwgen.nn_sru`) is the SRU, named as the `sru` package's.
The recurrent module of any registered cell (`hwgen.cells`, e.g. `nn.LSTM`, `nn.GRU`) with
a following `nn.Linear` can also be imported directly
(`hwgen.frontend.from_torch(rnn, head, head_mode=...)`).
"""
from __future__ import annotations

import torch
from torch import nn

from .cells import get_cell
from .nn_ligru import LiGRU
from .nn_sru import SRU

__all__ = ["HEAD_MODES", "LiGRU", "RecurrentClassifier", "SRU"]

HEAD_MODES = ("last", "every")


class RecurrentClassifier(nn.Module):
    """A recurrent module of a registered cell (batch_first) with a Linear head.

    Parameters
    ----------
    cell : a registered cell name (`hwgen.cells.CELLS`), e.g. lstm or gru; its
        `Cell.make_torch_module` builds the recurrent module.
    input_size, hidden_size, num_layers, output_size : int
    head_mode : "last" applies the head to the last step (sequence classification),
        "every" to every step (sequence labelling, language models).
    embedding : optional number of tokens V; when given, the model starts with an
        ``nn.Embedding(V, input_size)`` and takes token ids, (batch, T) or (batch, T, 1)
        (the hardware looks each one up in a token ROM, or has the table folded into the
        first layer: see docs/embeddings.md).
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int,
                 num_layers: int = 1, head_mode: str = "last", embedding: int | None = None):
        super().__init__()
        spec = get_cell(cell)  # UnknownCellError (a ValueError) for an unknown name
        if head_mode not in HEAD_MODES:
            raise ValueError(f"head_mode must be one of {HEAD_MODES}, not {head_mode!r}")
        self.cell = cell
        self.head_mode = head_mode
        if embedding is not None:
            self.embedding = nn.Embedding(embedding, input_size)
        self.rnn = spec.make_torch_module(input_size, hidden_size, num_layers=num_layers)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, T, input_size) float, or token ids (batch, T) / (batch, T, 1) with an
        embedding. Returns (batch, out) or (batch, T, out)."""
        if hasattr(self, "embedding"):
            x = self.embedding((x[..., 0] if x.dim() == 3 else x).long())
        y, _ = self.rnn(x)
        if self.head_mode == "last":
            y = y[:, -1]
        return self.head(y)

    def config(self) -> dict:
        config = dict(cell=self.cell, input_size=self.rnn.input_size,
                      hidden_size=self.rnn.hidden_size, output_size=self.head.out_features,
                      num_layers=self.rnn.num_layers, head_mode=self.head_mode)
        if hasattr(self, "embedding"):  # only then: the bundled models' json stay as they are
            config["embedding"] = self.embedding.num_embeddings
        return config
