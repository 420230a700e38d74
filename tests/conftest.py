import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def make_model(cell, input_size=5, hidden=13, out=3, layers=1, head_mode="last", seed=0):
    """A small random PyTorch model in eval mode."""
    import torch

    from hwgen.nn import RecurrentClassifier
    torch.manual_seed(seed)
    return RecurrentClassifier(cell, input_size, hidden, out, num_layers=layers,
                               head_mode=head_mode).eval()
