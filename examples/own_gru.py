"""Your own model through hwgen, from Python: nn.GRU -> fixed point -> Verilog -> RTL check.

The task is made here (no download): tell three frequencies of a noisy, randomly phased
two-channel oscillation apart from T=24 samples. A small GRU learns it in seconds on a CPU.

    .venv/bin/python examples/own_gru.py                     # train, quantize, generate
    .venv/bin/python examples/own_gru.py --simulate          # + cocotb/Verilator bit check
    .venv/bin/python examples/own_gru.py --synth ecp5-85f    # + Yosys/nextpnr report
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwgen.frontend import from_torch
from hwgen.quant import QuantConfig, quantize_model
from hwgen.ref import run_float, run_int
from hwgen.rtl.emit import generate

STEPS, FREQS = 24, (0.08, 0.10, 0.12)  # cycles per sample of the three classes


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, STEPS, 2) float32 inputs and their class labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(FREQS), size=n)
    freq = np.asarray(FREQS)[labels] * rng.uniform(0.9, 1.1, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    angle = 2 * np.pi * freq[:, None] * np.arange(STEPS)[None, :] + phase[:, None]
    amp = rng.uniform(0.5, 1.5, (n, 1))
    x = np.stack([amp * np.sin(angle), amp * np.cos(angle)], axis=-1)
    x += rng.normal(0, 0.6, x.shape)
    return x.astype(np.float32), labels


def train(x: np.ndarray, y: np.ndarray, hidden: int = 16, epochs: int = 40) -> nn.Sequential:
    """A GRU + Linear on the last step, trained with Adam (deterministic seed)."""
    torch.manual_seed(0)

    class LastStep(nn.Module):  # training wrapper only: hwgen imports the GRU and the Linear
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(x.shape[-1], hidden, batch_first=True)
            self.head = nn.Linear(hidden, len(FREQS))

        def forward(self, inp):
            return self.head(self.rnn(inp)[0][:, -1])

    model = LastStep()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return nn.Sequential(model.rnn, model.head).eval()


def run(out_dir: Path, lanes: int = 4, weight_bits: int = 8, sequences: int = 20) -> dict:
    """Train, import, quantize, check against the float model, generate the design."""
    x_train, y_train = make_data(1500, seed=1)
    x_test, y_test = make_data(500, seed=2)
    model = train(x_train, y_train)
    ir = from_torch(model, head_mode="last")  # the nn.Sequential (GRU, Linear)
    with torch.no_grad():
        torch_logits = model[1](model[0](torch.from_numpy(x_test))[0][:, -1]).numpy()
    float_logits = run_float(ir, x_test)  # hwgen's float path of the imported IR
    qm = quantize_model(ir, x_train[:300], QuantConfig(weight_bits=weight_bits, act_bits=8))
    xq = qm.quantize_inputs(x_test)
    int_logits = qm.decode_outputs(run_int(qm, xq))  # what the hardware computes, exactly
    design = generate(qm, out_dir, lanes=lanes, inputs=xq[:sequences])
    return {
        "import_error": float(np.abs(float_logits - torch_logits).max()),
        "float_accuracy": float(np.mean(float_logits.argmax(-1) == y_test)),
        "int_accuracy": float(np.mean(int_logits.argmax(-1) == y_test)),
        "weight_kbit": qm.memory_bits()["weight_bits"] / 1000,
        "design": design,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="rtl_out/sine_gru_p4", help="the design folder")
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--weight-bits", type=int, default=8)
    ap.add_argument("--simulate", action="store_true", help="cocotb + Verilator, bit for bit")
    ap.add_argument("--synth", metavar="TARGET", help="e.g. ecp5-85f or ice40-up5k")
    args = ap.parse_args()
    r = run(Path(args.out), args.lanes, args.weight_bits)
    print(f"import: hwgen float path vs PyTorch, max |diff| {r['import_error']:.2e}")
    print(f"accuracy: float {100 * r['float_accuracy']:.1f} %, {args.weight_bits}-bit "
          f"integer reference {100 * r['int_accuracy']:.1f} % "
          f"({r['weight_kbit']:.1f} kbit of weights)")
    print(f"design: {r['design']}")
    if args.simulate:
        from hwgen.sim import format_sim_report, simulate
        print(format_sim_report(simulate(r["design"])))
    if args.synth:
        from hwgen.synth import synthesize
        from hwgen.synth.table import format_table
        print(format_table(synthesize(r["design"], args.synth)))


if __name__ == "__main__":
    main()
