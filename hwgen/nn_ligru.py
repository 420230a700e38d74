"""The light GRU as a torch module, with speechbrain's parameter names (`hwgen.nn.LiGRU`).

State-dict keys are those of speechbrain's ``speechbrain.nnet.RNN.LiGRU``, so one saved
there loads here: per layer k, ``rnn.<k>.w.weight`` (2H, I), ``rnn.<k>.u.weight`` (2H, H),
``rnn.<k>.norm.*`` (BatchNorm1d(2H)) and the buffer ``rnn.<k>.h_init`` (1, H). Older
speechbrain names the norm ``bn_w``: those keys are renamed on load; speechbrain's
pre-sampled recurrent-dropout masks (``drop_masks``, ``drop_mask_te``) are not model
parameters and are dropped on load.

Per step (the rows of ``w`` and ``u`` are [candidate a, update z], as speechbrain's
``chunk(2)``)::

    a, z = BN(w x) + u h;  z = sigmoid(z);  h' = z * h + (1 - z) * relu(a)

The batch norm sees all steps of all sequences at once: batch statistics in training
mode, running statistics in eval mode (which `hwgen.cells.ligru` folds into the weights).
"""
from __future__ import annotations

import torch
from torch import nn

NORMALIZATIONS = ("batchnorm", "layernorm")
NONLINEARITIES = {"relu": torch.relu, "tanh": torch.tanh}
_DROPPED = ("drop_masks", "drop_mask_te")   # speechbrain's dropout masks: not parameters


class LiGRULayer(nn.Module):
    """One LiGRU layer (speechbrain's ``LiGRU_Layer`` names), batch-first.

    Parameters
    ----------
    input_size, hidden_size : int
    normalization : "batchnorm" (momentum 0.05, as speechbrain) or "layernorm".
    nonlinearity : "relu" or "tanh" (the candidate's activation).
    bidirectional : run the reversed sequence too, with the same weights (speechbrain's
        form), and concatenate the two outputs.
    """

    def __init__(self, input_size: int, hidden_size: int, normalization: str = "batchnorm",
                 nonlinearity: str = "relu", bidirectional: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self.act = NONLINEARITIES[nonlinearity]
        self.w = nn.Linear(input_size, 2 * hidden_size, bias=False)
        self.u = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.norm = (nn.BatchNorm1d(2 * hidden_size, momentum=0.05)
                     if normalization == "batchnorm" else nn.LayerNorm(2 * hidden_size))
        self.register_buffer("h_init", torch.zeros(1, hidden_size))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in [k for k in state_dict if k.startswith(prefix + "bn_w.")]:
            state_dict[prefix + "norm." + key[len(prefix + "bn_w."):]] = state_dict.pop(key)
        for name in _DROPPED:
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, T, I) -> h for every step (N, T, H), or (N, T, 2H) if bidirectional."""
        if self.bidirectional:
            x = torch.cat([x, x.flip(1)], dim=0)
        n, t_len, _ = x.shape
        w = self.norm(self.w(x).reshape(n * t_len, -1)).reshape(n, t_len, -1)
        h = self.h_init.expand(n, -1) if hx is None else hx
        out = []
        for t in range(t_len):
            a, z = (w[:, t] + self.u(h)).chunk(2, dim=1)
            z = torch.sigmoid(z)
            h = z * h + (1 - z) * self.act(a)
            out.append(h)
        h = torch.stack(out, dim=1)
        if self.bidirectional:
            forward, backward = h.chunk(2, dim=0)
            h = torch.cat([forward, backward.flip(1)], dim=2)
        return h


class LiGRU(nn.Module):
    """A stack of LiGRU layers with the interface of `torch.nn.GRU` (no initial state).

    Parameters
    ----------
    input_size, hidden_size, num_layers : int
    batch_first : (N, T, I) inputs and outputs if True, else (T, N, I).
    normalization, nonlinearity, bidirectional : see `LiGRULayer`; hwgen's import takes
        batch norm, ReLU, one direction (anything else is refused by name).

    ``forward(x)`` returns (outputs of the last layer, last step of each layer
    (num_layers, N, H)).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 batch_first: bool = True, normalization: str = "batchnorm",
                 nonlinearity: str = "relu", bidirectional: bool = False):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, "
                             f"not {normalization!r}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {tuple(NONLINEARITIES)}, "
                             f"not {nonlinearity!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.bidirectional = batch_first, bidirectional
        self.normalization, self.nonlinearity = normalization, nonlinearity
        width = 2 * hidden_size if bidirectional else hidden_size
        self.rnn = nn.ModuleList(
            LiGRULayer(input_size if k == 0 else width, hidden_size, normalization,
                       nonlinearity, bidirectional) for k in range(num_layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.batch_first:
            x = x.transpose(0, 1)
        last = []
        for layer in self.rnn:
            x = layer(x)
            last.append(x[:, -1])
        out = x if self.batch_first else x.transpose(0, 1)
        return out, torch.stack(last, dim=0)
