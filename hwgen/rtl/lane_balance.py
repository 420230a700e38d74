"""Hidden units ordered so that the lanes of the ternary datapath share the digits evenly.

Lane k of P serves units k, k + P, ... of every gate block (`ternary_plan`), and a column
costs its busiest lane's count of nonzero digits: with unstructured pruning one lane often
holds more than its share. Which units share a lane is free: permuting a layer's hidden
units (its rows in every block, its recurrent columns, and the next layer's or the head's
input columns, in their levels too) leaves every output the same, bit for bit, and the
element-wise work is per unit. `balance` picks, per layer, an order that lowers the sum over columns of the busiest
lane's count, by swapping units between lanes while a swap helps (a local search: the
digits of digits_gru_t2s90e200 at 8 lanes take 132 stored words a step, not 173).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..qmodel import QModel
from .plan import PlanError

#: Passes over all unit pairs of the swap search (each stops early when no swap helps).
SWAP_ROUNDS = 3


def unit_digits(qm: QModel, k: int) -> np.ndarray:
    """(H, C) nonzero digits of each hidden unit of layer k (every block and level of its
    rows) in each of the layer's columns, input then recurrent."""
    hidden = qm.layers[k].w_h.shape[1]
    cols = []
    for side in ("x", "h"):
        t = qm.ternary[k][side]
        if t is not None:
            nonzero = (t.planes != 0).sum(0)
            cols.append(nonzero.reshape(-1, hidden, nonzero.shape[1]).sum(0))
    return np.concatenate(cols, axis=1)


def stored_words(digits: np.ndarray, order: np.ndarray, lanes: int) -> int:
    """Stored words of the layer's columns with unit `order[u]` at position u (lane u % P):
    per column its busiest lane's digits, at least 1."""
    loads = np.zeros((lanes, digits.shape[1]), np.int64)
    np.add.at(loads, np.arange(len(order)) % lanes, digits[order])
    return int(np.maximum(loads.max(0), 1).sum())


def balanced_order(digits: np.ndarray, lanes: int) -> np.ndarray:
    """A unit order with no more stored words than the given one: swaps of two units in
    different lanes, kept when they lower `stored_words`."""
    order = np.arange(len(digits))
    best = stored_words(digits, order, lanes)
    for _ in range(SWAP_ROUNDS):
        improved = False
        for a in range(len(order)):
            for b in range(a + 1, len(order)):
                if a % lanes == b % lanes:
                    continue
                order[[a, b]] = order[[b, a]]
                cost = stored_words(digits, order, lanes)
                if cost < best:
                    best, improved = cost, True
                else:
                    order[[a, b]] = order[[b, a]]
        if not improved:
            break
    return order


def permute_units(qm: QModel, k: int, order: np.ndarray) -> QModel:
    """The same model with layer k's hidden unit `order[u]` as unit u: its outputs are
    `qm`'s, bit for bit."""
    layer = qm.layers[k]
    hidden = layer.w_h.shape[1]
    blocks = len(layer.bias) // hidden   # accumulator rows: H a gate block
    rows = (np.arange(blocks)[:, None] * hidden + order[None, :]).ravel()
    layers, mats = list(qm.layers), [dict(m) for m in qm.ternary]
    layers[k] = dataclasses.replace(
        layer, w_x=layer.w_x[rows], w_h=layer.w_h[rows][:, order], bias=layer.bias[rows],
        vectors={n: v[order] for n, v in layer.vectors.items()})
    for side in ("x", "h"):
        t = mats[k][side]
        if t is not None:
            planes = t.planes[:, rows]
            mats[k][side] = dataclasses.replace(
                t, planes=planes[:, :, order] if side == "h" else planes,
                alpha=t.alpha[:, rows], real_rows=t.real_rows[rows])
    head, head_t = qm.head, qm.ternary_head
    if k + 1 < len(layers):   # the next layer reads h as its input columns
        nxt = layers[k + 1]
        layers[k + 1] = dataclasses.replace(nxt, w_x=nxt.w_x[:, order])
        t = mats[k + 1]["x"]
        mats[k + 1]["x"] = dataclasses.replace(t, planes=t.planes[:, :, order])
    else:
        head = dataclasses.replace(head, weight=head.weight[:, order])
        if head_t is not None:
            head_t = dataclasses.replace(head_t, planes=head_t.planes[:, :, order])
    return dataclasses.replace(qm, layers=layers, head=head, ternary=mats, ternary_head=head_t)


def balance(qm: QModel, lanes: int) -> QModel:
    """`qm` (a ternary model) with each layer's units in a `balanced_order` for `lanes`."""
    for k in range(len(qm.layers)):
        qm = permute_units(qm, k, balanced_order(unit_digits(qm, k), lanes))
    return qm


def design_model(qm: QModel, lanes: int, balance_lanes: bool | None = None) -> tuple:
    """The model a design of `lanes` lanes runs, and whether its lanes are balanced: a
    ternary model's units in a `balanced_order` unless `balance_lanes` is False (None, the
    default, balances them); a model without ternary levels as it is (True is refused)."""
    if balance_lanes and qm.ternary is None:
        raise PlanError("balance_lanes is for a ternary model (the multiplier-free datapath)")
    balanced = qm.ternary is not None and balance_lanes is not False
    return (balance(qm, lanes) if balanced else qm), balanced
