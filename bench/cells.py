"""The four cells side by side on the digits task (the Shrink-and-Eliminate comparison).

Per bundled digits model (LSTM, GRU, LiGRU, SRU): float accuracy; calibrated post-training
quantization at 8 and 4-bit weights (8-bit activations), the 8-bit weight memory and the
weight-memory cut against float32 at both widths; the share of MACs a delta network
eliminates with thresholds chosen within 1 accuracy point of the 8-bit dense model; and the
cycle model's cycles per step (and step utilization) at 2 and 8 lanes.
"""
from __future__ import annotations

import common  # noqa: F401  (puts the project on sys.path)

from hwgen import flow


def main() -> None:
    rows = [flow.cell_comparison_row(name) for name in flow.CELL_MODELS]
    print(f"digits task, accuracy % on the test set; delta within {flow.DELTA_BUDGET} point "
          "of 8-bit")
    print(flow.format_cell_table(rows))


if __name__ == "__main__":
    main()
