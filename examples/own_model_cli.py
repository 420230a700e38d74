"""Make the files a user brings to `hwgen` on the command line (README: "Your own model
(command line)"): a small time-major GRU trained on a toy task, saved as TorchScript
(`gru.pt`) and as ONNX (`gru.onnx`), with calibration (`calib.npz`, array ``x``) and test
data (`test.npz`, ``x`` and labels ``y``), both time-major (T, N, I) like the model.

Usage: ``python examples/own_model_cli.py OUT_DIR``
"""
from __future__ import annotations

from pathlib import Path
import sys
import warnings

import numpy as np
import torch
from torch import nn


class Net(nn.Module):
    """nn.GRU (time-major) -> nn.Linear on the last step."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 12)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[-1])


def toy_data(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(T=10, n, 3) sequences; the label is the feature whose running sum ends highest."""
    x = rng.normal(size=(10, n, 3)).astype(np.float32)
    return x, x.sum(axis=0).argmax(axis=1)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model, (x, y) = Net(), toy_data(512, rng)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
    model.eval()
    x_test, y_test = toy_data(200, rng)
    np.savez(out / "calib.npz", x=x[:, :128])
    np.savez(out / "test.npz", x=x_test, y=y_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(model).save(str(out / "gru.pt"))
        torch.onnx.export(model, (torch.from_numpy(x[:, :2]),), str(out / "gru.onnx"),
                          dynamo=False)
    acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"wrote {out}/gru.pt, gru.onnx, calib.npz, test.npz (float accuracy "
          f"{100 * acc:.1f} %)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "my_model"))
