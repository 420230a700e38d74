"""PyTorch modules -> float IR. Refuses what it cannot represent, by name."""
from __future__ import annotations

import numpy as np

from .ir import LinearHead, ModelIR, RNNLayer


class UnsupportedModelError(ValueError):
    """The model uses a feature hwgen does not (yet) turn into hardware."""


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def _import_rnn(rnn) -> list[RNNLayer]:
    from torch import nn

    if isinstance(rnn, nn.LSTM):
        cell = "lstm"
    elif isinstance(rnn, nn.GRU):
        cell = "gru"
    else:
        raise UnsupportedModelError(
            f"Unsupported recurrent layer {type(rnn).__name__}: expected nn.LSTM or nn.GRU")
    if rnn.bidirectional:
        raise UnsupportedModelError(f"Unsupported: bidirectional {type(rnn).__name__}")
    if getattr(rnn, "proj_size", 0):
        raise UnsupportedModelError(f"Unsupported: LSTM proj_size={rnn.proj_size}")
    if rnn.dropout and rnn.training:
        raise UnsupportedModelError(
            f"Unsupported: dropout={rnn.dropout} at inference (call model.eval() first)")
    layers = []
    for k in range(rnn.num_layers):
        w_ih = _np(getattr(rnn, f"weight_ih_l{k}"))
        w_hh = _np(getattr(rnn, f"weight_hh_l{k}"))
        zeros = np.zeros(w_ih.shape[0])
        b_ih = _np(getattr(rnn, f"bias_ih_l{k}")) if rnn.bias else zeros
        b_hh = _np(getattr(rnn, f"bias_hh_l{k}")) if rnn.bias else zeros.copy()
        layers.append(RNNLayer(cell, w_ih, w_hh, b_ih, b_hh))
    return layers


def _import_head(head) -> LinearHead:
    from torch import nn

    if not isinstance(head, nn.Linear):
        raise UnsupportedModelError(
            f"Unsupported head {type(head).__name__}: expected nn.Linear")
    bias = _np(head.bias) if head.bias is not None else np.zeros(head.out_features)
    return LinearHead(_np(head.weight), bias)


def from_torch(model, head=None, head_mode: str | None = None) -> ModelIR:
    """Import a PyTorch recurrent model.

    Parameters
    ----------
    model : `hwgen.nn.RecurrentClassifier`, or an `nn.LSTM` / `nn.GRU` (then give `head`),
        or an `nn.Sequential` of exactly (recurrent layer, nn.Linear).
    head : nn.Linear applied to the recurrent output (when `model` is a bare RNN).
    head_mode : "last" (head on the last step) or "every" (head on every step).

    The IR's meta records the recurrent module's ``batch_first``: functions that take data
    then follow its layout by default, time-major (T, N, I) for ``batch_first=False``
    (see `hwgen.ir.data_layout`).
    """
    from torch import nn

    from .nn import RecurrentClassifier

    if isinstance(model, RecurrentClassifier):
        rnn, head = model.rnn, model.head
        head_mode = head_mode or model.head_mode
    elif isinstance(model, nn.Sequential):
        parts = list(model)
        if len(parts) != 2:
            names = ", ".join(type(p).__name__ for p in parts)
            raise UnsupportedModelError(
                f"Unsupported nn.Sequential ({names}): expected (nn.LSTM|nn.GRU, nn.Linear)")
        rnn, head = parts
    elif isinstance(model, nn.RNNBase):
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
    return ModelIR(layers, linear, head_mode or "last",
                   meta={"batch_first": bool(rnn.batch_first)})
