"""Reference throughput: integer (bit-exact) and float paths on a 1000-sequence batch.

Prints MAC/s and sequences/s; the integer/float ratio is measured in the same run.
"""
from __future__ import annotations

from common import random_task_model, smooth_inputs, timed

from hwgen.quant import QuantConfig, quantize_model
from hwgen.ref import DeltaStats, run_float, run_int

N_SEQ = 1000


def macs_per_sequence(ir, t_len: int) -> int:
    per_step = sum((4 if l.cell == "lstm" else 3) * l.hidden_size * (l.input_size + l.hidden_size)
                   for l in ir.layers)
    head = ir.head.weight.size * (t_len if ir.head_mode == "every" else 1)
    return per_step * t_len + head


def main() -> None:
    print(f"reference throughput, {N_SEQ}-sequence batch")
    print(f"{'model':<28} {'T':>3} {'int seq/s':>10} {'int MMAC/s':>11} "
          f"{'float seq/s':>12} {'int/float':>9} {'delta seq/s':>12}")
    for cell, i_size, hidden, layers, t_len in [("gru", 16, 64, 1, 20), ("lstm", 16, 64, 1, 20),
                                                ("gru", 4, 32, 1, 16), ("lstm", 32, 64, 2, 50)]:
        ir = random_task_model(cell, i_size, hidden, layers=layers)
        x = smooth_inputs(N_SEQ, t_len, i_size)
        qm = quantize_model(ir, x[:128], QuantConfig(weight_bits=8, act_bits=8))
        xq = qm.quantize_inputs(x)
        t_int, _ = timed(run_int, qm, xq)
        t_float, _ = timed(run_float, ir, x)
        t_delta, _ = timed(run_int, qm, xq, delta=[(2, 2)] * layers, stats=DeltaStats())
        macs = macs_per_sequence(ir, t_len) * N_SEQ
        name = f"{cell.upper()} I={i_size} H={hidden} L={layers}"
        print(f"{name:<28} {t_len:>3} {N_SEQ / t_int:>10.0f} {macs / t_int / 1e6:>11.1f} "
              f"{N_SEQ / t_float:>12.0f} {t_int / t_float:>9.2f} {N_SEQ / t_delta:>12.0f}")


if __name__ == "__main__":
    main()
