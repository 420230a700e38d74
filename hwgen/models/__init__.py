"""The bundled trained models: `list_models()`, `load_model(name)`, `load_task_data(meta, split)`."""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def list_models() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.json"))


def load_model(name: str):
    """(RecurrentClassifier in eval mode, meta dict) of a bundled model."""
    import torch

    from ..nn import RecurrentClassifier
    if name not in list_models():
        raise KeyError(f"Unknown bundled model {name!r}; available: {', '.join(list_models())}")
    meta = json.loads((HERE / f"{name}.json").read_text())
    model = RecurrentClassifier(**meta["config"])
    model.load_state_dict(torch.load(HERE / f"{name}.pt", weights_only=True))
    return model.eval(), meta


def load_task_data(meta: dict, split: str):
    """(X, y) of the model's task: digits (N, 16, 4) / labels, or char LM one-hot / next symbols."""
    from .. import data
    if meta["task"] == "digits":
        return data.load_digits_sequences(split)
    if meta["task"] == "char_lm":
        return data.char_lm_sequences(split)
    raise ValueError(f"Unknown task {meta['task']!r}")
