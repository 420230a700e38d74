"""The bundled trained models: `list_models()`, `load_model(name)`, `load_task_data(meta, split)`.

Each model is a ``<name>.pt`` state_dict and a ``<name>.json`` with its `RecurrentClassifier`
config, task and float test metrics, written by ``python -m hwgen.train``.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def list_models() -> list[str]:
    """Names of the bundled models, sorted."""
    return sorted(p.stem for p in HERE.glob("*.json"))


def load_model(name: str):
    """Load a bundled model.

    Parameters
    ----------
    name : str
        One of `list_models()`.

    Returns
    -------
    model : RecurrentClassifier
        In eval mode.
    meta : dict
        The json: ``config``, ``task``, ``metrics`` (float, test split), ``name``, training time.

    Raises
    ------
    KeyError
        For an unknown name; the message lists the available ones.
    """
    import torch

    from ..nn import RecurrentClassifier
    if name not in list_models():
        raise KeyError(f"Unknown bundled model {name!r}; available: {', '.join(list_models())}")
    meta = json.loads((HERE / f"{name}.json").read_text())
    model = RecurrentClassifier(**meta["config"])
    model.load_state_dict(torch.load(HERE / f"{name}.pt", weights_only=True))
    return model.eval(), meta


def load_task_data(meta: dict, split: str):
    """The data of a model's task.

    Parameters
    ----------
    meta : dict
        A model's meta (only ``meta["task"]`` is read: "digits", "char_lm", "speech" or "word_lm").
    split : {"train", "valid", "test"}

    Returns
    -------
    X, y : ndarray
        digits: X (N, 16, 4) float32, y (N,) int64 labels. char_lm: X (N, 50, 32) one-hot
        float32, y (N, 50) int64 next symbols (300 test sequences). speech: X (N, 50, 40)
        float32 normalised log-mel energies, y (N,) int64 keyword indices (voices held out).
        float32, y (N, 50) int64 next symbols (300 test sequences). word_lm: X (N, 35, 1)
        token ids, y (N, 35) next words (100 test sequences).

    Raises
    ------
    ValueError
        For an unknown task or split.
    """
    from .. import data
    if meta["task"] == "digits":
        return data.load_digits_sequences(split)
    if meta["task"] == "char_lm":
        return data.char_lm_sequences(split)
    if meta["task"] == "speech":
        return data.load_speech_commands(split)
    if meta["task"] == "word_lm":
        return data.word_lm_sequences(split)
    raise ValueError(f"Unknown task {meta['task']!r}")
