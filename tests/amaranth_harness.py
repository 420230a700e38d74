"""Drive an Accelerator in Amaranth's simulator: sequences in, outputs out, with stalls."""
from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from stream_helpers import stream_put


def run_accelerator(dut, inputs: np.ndarray, head_mode: str, out_size: int,
                    stall_in: float = 0.0, stall_out: float = 0.0, seed: int = 0,
                    max_cycles: int = 2_000_000, weights: bytes | None = None,
                    stall_weights: float = 0.0):
    """Send (N, T, I) integer sequences; return outputs shaped like `hwgen.ref.run_int`'s
    and the number of cycles the run took.

    A design that loads its weights (``weights="load"``) gets the image `weights` on its
    `weights` stream, a byte a beat (idle before a beat with probability `stall_weights`),
    while the inputs are offered from the first cycle on: no input may be taken before
    the image's last byte."""
    rng = np.random.default_rng(seed)
    field = next(iter(dut.i.payload.shape()))[0]   # the value field: data, or a token id
    n, t_len, i_size = inputs.shape
    per_seq = out_size * (t_len if head_mode == "every" else 1)
    got: list[int] = []
    cycles = [0]
    weights_in = [weights is None]   # the whole image has been taken

    async def feeder(ctx):
        for s in range(n):
            for t in range(t_len):
                for i in range(i_size):
                    while rng.random() < stall_in:
                        ctx.set(dut.i.valid, 0)
                        await ctx.tick()
                    ctx.set(dut.i.valid, 1)
                    ctx.set(dut.i.payload, {field: int(inputs[s, t, i]),
                                            "step_end": int(i == i_size - 1),
                                            "seq_end": int(i == i_size - 1 and t == t_len - 1)})
                    await ctx.tick().until(dut.i.ready)
                    ctx.set(dut.i.valid, 0)

    async def weight_feeder(ctx):
        await stream_put(ctx, dut.weights, weights, stall=stall_weights, rng=rng,
                         timeout=max_cycles)
        weights_in[0] = True

    async def drainer(ctx):
        while len(got) < n * per_seq:
            ready = int(rng.random() >= stall_out)
            ctx.set(dut.o.ready, ready)
            await ctx.tick()
            cycles[0] += 1
            if cycles[0] > max_cycles:
                raise TimeoutError(f"no complete output after {max_cycles} cycles")
        ctx.set(dut.o.ready, 0)

    async def monitor(ctx):
        async for _, _, valid, ready, payload, i_valid, i_ready in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.i.valid, dut.i.ready):
            if valid and ready:
                got.append(payload.data)
            if i_valid and i_ready and not weights_in[0]:
                raise AssertionError("an input was taken before the weights were loaded")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feeder, background=True)
    if weights is not None:
        sim.add_testbench(weight_feeder, background=True)
    sim.add_process(monitor)
    sim.add_testbench(drainer)
    sim.run()
    out = np.array(got, dtype=np.int64)
    shape = (n, t_len, out_size) if head_mode == "every" else (n, out_size)
    return out.reshape(shape), cycles[0]


def step_cycles(dut, sequence: np.ndarray, head_mode: str, out_size: int) -> int:
    """Cycles one more step costs, measured: a (1, 3, I) sequence against its first two
    steps, both without stalls (what the cycle model's per-step figure must equal)."""
    _, two = run_accelerator(dut, sequence[:, :2], head_mode, out_size)
    _, three = run_accelerator(dut, sequence[:, :3], head_mode, out_size)
    return three - two
