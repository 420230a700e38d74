"""SRU (Lei et al., 2018) as a PyTorch module whose parameters load from the `sru` package.

Matched against asappresearch/sru 2.6.0 (``sru/modules.py`` ``SRUCell`` / ``SRU`` and the CPU
reference ``cpu_forward`` in ``sru/csrc/sru_cpu_impl.cpp``). Per layer (``rnn_lst.<k>.``):

* ``weight`` (in, out * k), viewed as (in, out, k): unit j's k sub-matrices sit side by side
  (columns ``j*k .. j*k+k-1``); sub-matrix 0 gives the candidate u = W x, 1 the forget gate,
  2 the reset gate, 3 (k = 4, when in != out) the highway x' = W' x;
* ``weight_c`` (2 out): v_f then v_r;  ``bias`` (2 out): b_f then b_r (u and x' have none);
* ``scale_x`` (a buffer of one value): x' = scale_x * x when k = 3. The `sru` package
  applies it only with ``rescale=True`` and otherwise leaves the buffer at 1, so applying
  the buffer always is the same function for both settings.

Step (activation: identity on c, the package default)::

    f = sigmoid(u_f + v_f * c + b_f);  r = sigmoid(u_r + v_r * c + b_r)
    c' = (c - u) * f + u;  h' = (c' - x') * r + x'

Options of the package this module does not represent are refused by name at
construction (bidirectional, projection_size / n_proj, layer_norm, use_tanh,
has_skip_term=False, custom_m, v1).
"""
from __future__ import annotations

import math

import torch
from torch import nn

_DEFAULTS = {"bidirectional": False, "projection_size": 0, "n_proj": 0, "layer_norm": False,
             "use_tanh": False, "has_skip_term": True, "custom_m": None, "v1": False,
             "nn_rnn_compatible_return": False, "proj_input_to_hidden_first": False}


def _refuse(options: dict) -> None:
    for name, value in options.items():
        if name not in _DEFAULTS and name not in ("dropout", "rnn_dropout",
                                                  "amp_recurrence_fp16", "normalize_after",
                                                  "weight_c_init"):
            raise TypeError(f"SRU got an unexpected option {name!r}")
        if name in _DEFAULTS and value != _DEFAULTS[name]:
            raise ValueError(f"hwgen's SRU does not support {name}={value!r}")
        if name in ("dropout", "rnn_dropout") and value:
            raise ValueError(f"hwgen's SRU does not support {name}={value!r}")


class SRUCell(nn.Module):
    """One SRU layer with the `sru` package's parameter names (time-major input).

    Parameters
    ----------
    input_size, hidden_size : int
    highway_bias : initial reset-gate bias (the package's name for it).
    rescale : scale the k = 3 highway by sqrt(1 + 2 exp(highway_bias)) (as the package).
    """

    def __init__(self, input_size: int, hidden_size: int, highway_bias: float = 0.0,
                 rescale: bool = False, **options):
        super().__init__()
        _refuse(options)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.k = 3 if input_size == hidden_size else 4
        self.weight = nn.Parameter(torch.empty(input_size, hidden_size * self.k))
        self.weight_c = nn.Parameter(torch.empty(2 * hidden_size))
        self.bias = nn.Parameter(torch.zeros(2 * hidden_size))
        self.register_buffer("scale_x", torch.ones(1))
        self.reset_parameters(highway_bias, rescale)

    def reset_parameters(self, highway_bias: float = 0.0, rescale: bool = False) -> None:
        """The package's recipe: Var(w) = 1/in, gate columns and v scaled by sqrt(1/2)."""
        scale = math.sqrt(1 + 2 * math.exp(highway_bias)) if rescale else 1.0
        with torch.no_grad():
            bound = math.sqrt(3.0 / self.input_size)
            self.weight.uniform_(-bound, bound)
            w = self.weight.view(self.input_size, self.hidden_size, self.k)
            w[:, :, 1:3] *= math.sqrt(0.5)
            if self.k == 4:
                w[:, :, 3] *= scale
            self.weight_c.uniform_(-math.sqrt(1.5), math.sqrt(1.5))
            self.bias.zero_()
            self.bias[self.hidden_size:] = highway_bias
            self.scale_x.fill_(scale)

    def forward(self, x: torch.Tensor, c0: torch.Tensor | None = None):
        """x: (T, N, in). Returns h (T, N, out) and the last c (N, out)."""
        t_len, n, _ = x.shape
        hsz = self.hidden_size
        u = (x.reshape(-1, self.input_size) @ self.weight).view(t_len, n, hsz, self.k)
        v_f, v_r = self.weight_c.view(2, hsz)
        b_f, b_r = self.bias.view(2, hsz)
        highway = u[..., 3] if self.k == 4 else x * self.scale_x
        c = x.new_zeros(n, hsz) if c0 is None else c0
        out = []
        for t in range(t_len):
            f = torch.sigmoid(u[t, :, :, 1] + v_f * c + b_f)
            r = torch.sigmoid(u[t, :, :, 2] + v_r * c + b_r)
            c = (c - u[t, :, :, 0]) * f + u[t, :, :, 0]
            out.append((c - highway[t]) * r + highway[t])
        return torch.stack(out), c


class SRU(nn.Module):
    """A stack of `SRUCell` layers (``rnn_lst``), as the `sru` package's ``SRU``.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int
    batch_first : True: (N, T, in) in and out (the package itself is time-major, False).
    highway_bias, rescale : as `SRUCell`.
    options : the package's other options, refused by name unless at their defaults.

    ``forward(x)`` returns (h of every step, c of each layer's last step (L, N, out)).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 batch_first: bool = True, highway_bias: float = 0.0, rescale: bool = False,
                 **options):
        super().__init__()
        _refuse(options)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.batch_first = num_layers, batch_first
        self.bidirectional = False
        self.rnn_lst = nn.ModuleList(
            SRUCell(input_size if k == 0 else hidden_size, hidden_size, highway_bias, rescale)
            for k in range(num_layers))

    def forward(self, x: torch.Tensor, c0: torch.Tensor | None = None):
        v = x.transpose(0, 1) if self.batch_first else x
        cs = []
        for k, cell in enumerate(self.rnn_lst):
            v, c = cell(v, None if c0 is None else c0[k])
            cs.append(c)
        return (v.transpose(0, 1) if self.batch_first else v), torch.stack(cs)
