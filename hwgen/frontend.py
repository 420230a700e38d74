"""PyTorch modules -> float IR. Refuses what it cannot represent, by name.

Which recurrent modules import, and how their weights do, is the cells' business
(`hwgen.cells`: `Cell.torch_module`, `Cell.unsupported`, `Cell.import_layers`).
"""
from __future__ import annotations

import numpy as np

from .cells import cell_for_torch_module, torch_labels
from .cells.base import tensor_to_numpy
from .ir import LinearHead, ModelIR, RNNLayer


class UnsupportedModelError(ValueError):
    """The model uses a feature hwgen does not (yet) turn into hardware."""


def _either(names: list[str]) -> str:
    """The names as a message lists alternatives: "a, b or c"."""
    return " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def _import_rnn(rnn) -> list[RNNLayer]:
    cell = cell_for_torch_module(rnn)
    if cell is None:
        raise UnsupportedModelError(f"Unsupported recurrent layer {type(rnn).__name__}: "
                                    f"expected {_either(torch_labels())}")
    reason = cell.unsupported(rnn)
    if reason:
        raise UnsupportedModelError(f"Unsupported: {reason}")
    return cell.import_layers(rnn)


def _import_head(head) -> LinearHead:
    from torch import nn

    if not isinstance(head, nn.Linear):
        raise UnsupportedModelError(
            f"Unsupported head {type(head).__name__}: expected nn.Linear")
    bias = tensor_to_numpy(head.bias) if head.bias is not None else np.zeros(head.out_features)
    return LinearHead(tensor_to_numpy(head.weight), bias)


def import_embedding(emb, label: str = "nn.Embedding") -> np.ndarray:
    """The (V, E) table of an ``nn.Embedding``; options that change what a lookup returns
    are refused by name (`padding_idx` only affects training, so it is fine)."""
    from torch import nn

    if not isinstance(emb, nn.Embedding):
        raise UnsupportedModelError(f"Unsupported {label} {type(emb).__name__}: expected "
                                    f"nn.Embedding (a table lookup per token)")
    if emb.max_norm is not None:
        raise UnsupportedModelError(
            f"Unsupported: {label} with max_norm={emb.max_norm} (it renormalises rows on "
            f"lookup, changing the table as it runs)")
    return tensor_to_numpy(emb.weight)


def from_torch(model, head=None, head_mode: str | None = None) -> ModelIR:
    """Import a PyTorch recurrent model.

    Parameters
    ----------
    model : `hwgen.nn.RecurrentClassifier`, or a recurrent module of a registered cell
        (`hwgen.cells.torch_labels`, e.g. `nn.LSTM`; then give `head`),
        or an `nn.Sequential` of exactly (recurrent layer, nn.Linear) or (nn.Embedding,
        recurrent layer, nn.Linear).
    head : nn.Linear applied to the recurrent output (when `model` is a bare RNN).
    head_mode : "last" (head on the last step) or "every" (head on every step).

    The IR's meta records the recurrent module's ``batch_first``: functions that take data
    then follow its layout by default, time-major (T, N, I) for ``batch_first=False``
    (see `hwgen.ir.data_layout`).
    """
    from torch import nn

    from .nn import RecurrentClassifier

    embedding = None
    if isinstance(model, RecurrentClassifier):
        rnn, head = model.rnn, model.head
        head_mode = head_mode or model.head_mode
        if hasattr(model, "embedding"):
            embedding = import_embedding(model.embedding)
    elif isinstance(model, nn.Sequential):
        parts = list(model)
        if len(parts) == 3 and isinstance(parts[0], (nn.Embedding, nn.EmbeddingBag)):
            embedding = import_embedding(parts[0], "Sequential[0]")
            parts = parts[1:]
        if len(parts) != 2:
            names = ", ".join(type(p).__name__ for p in model)
            raise UnsupportedModelError(
                f"Unsupported nn.Sequential ({names}): "
                f"expected ([nn.Embedding,] {'|'.join(torch_labels())}, nn.Linear)")
        rnn, head = parts
    elif isinstance(model, nn.RNNBase) or cell_for_torch_module(model) is not None:
        rnn = model
        if head is None:
            raise UnsupportedModelError("A recurrent layer needs a Linear head: pass head=")
    else:
        raise UnsupportedModelError(f"Unsupported model type {type(model).__name__}")
    layers = _import_rnn(rnn)
    linear = _import_head(head)
    if linear.weight.shape[1] != layers[-1].hidden_size:
        raise UnsupportedModelError(
            f"Head expects {linear.weight.shape[1]} inputs but the last recurrent layer has "
            f"{layers[-1].hidden_size} hidden units")
    if embedding is not None and embedding.shape[1] != layers[0].input_size:
        raise UnsupportedModelError(
            f"The embedding gives {embedding.shape[1]} values per token but the first "
            f"recurrent layer takes {layers[0].input_size}")
    return ModelIR(layers, linear, head_mode or "last",
                   meta={"batch_first": bool(rnn.batch_first)}, embedding=embedding)
