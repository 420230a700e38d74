"""Testbench helpers for Amaranth's simulator: streams with random gaps, read ports, traces.

* `stream_put` / `stream_get` move payloads through a `lib.stream` interface from an async
  testbench, leaving random cycles without `valid` (or `ready`) from a seeded generator;
* `add_read_port` answers a component's read address with the stored word one or two clock
  edges later, as a synchronous memory read port (and a register after it) would;
* `add_trace` samples signals at every clock edge, so that a test can count cycles;
* `plain` turns a sampled value (a `data.Const` of a struct or array layout) into dicts,
  lists and ints.
"""
from __future__ import annotations

import numpy as np
from amaranth.lib import data

#: Cycles a stream helper waits for its peer before it gives up.
TIMEOUT = 10_000


def plain(value):
    """A sampled value as plain Python: struct -> dict, array -> list, else int."""
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [plain(value[n]) for n in range(layout.length)]
        return {name: plain(value[name]) for name, _ in layout}
    return int(value)


def _generator(rng, seed):
    return rng if rng is not None else np.random.default_rng(seed)


async def stream_put(ctx, stream, payloads, *, stall: float = 0.0, rng=None, seed: int = 0,
                     timeout: int = TIMEOUT):
    """Send `payloads` on `stream` (the testbench is its source).

    Before each payload, a cycle without `valid` is left with probability `stall` (again and
    again, so gaps are geometric); otherwise payloads follow back to back. Returns when the
    last payload has been taken; `valid` is low then.
    """
    rng = _generator(rng, seed)
    for payload in payloads:
        while stall and rng.random() < stall:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.payload, payload)
        ctx.set(stream.valid, 1)
        for _ in range(timeout):
            _, _, ready = await ctx.tick().sample(stream.ready)
            if ready:
                break
        else:
            raise TimeoutError(f"stream_put: no ready for {timeout} cycles")
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, n: int, *, stall: float = 0.0, rng=None, seed: int = 0,
                     timeout: int = TIMEOUT) -> list:
    """Take `n` payloads from `stream` (the testbench is its sink), as plain values.

    Each cycle `ready` is low with probability `stall`. Returns once `n` payloads have been
    taken, `ready` low again; raises TimeoutError when none comes for `timeout` cycles.
    """
    always_ready = stream.signature.always_ready
    if always_ready and stall:
        raise ValueError("stream_get: an always-ready stream cannot be stalled")
    rng = _generator(rng, seed)
    got, waited = [], 0
    while len(got) < n:
        ready = not (stall and rng.random() < stall)
        if not always_ready:
            ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid and ready:
            got.append(plain(payload))
            waited = 0
        else:
            waited += 1
            if waited > timeout:
                raise TimeoutError(f"stream_get: {len(got)} of {n} payloads, then none "
                                   f"for {timeout} cycles")
    if not always_ready:
        ctx.set(stream.ready, 0)
    return got


def add_read_port(sim, addr, data_out, contents, latency: int = 1):
    """Answer `addr` with ``contents[addr]`` on `data_out`, `latency` clock edges later.

    `contents` is a list or numpy array (one row per word for an array-shaped `data_out`);
    an address past its end reads as 0. Latency 1 is a synchronous read port; 2 is a read
    port followed by a register (`MacArray.acc_word`). `data_out` is 0 until the first
    answer. The model is a process, so its output changes at the clock edge, like RTL.
    An address carried as its copies (`hwgen.rtl.fanout.copied`) must have them all equal.
    """
    if latency < 1:
        raise ValueError("a synchronous read port answers at least one edge later")
    rows = [np.asarray(word).tolist() for word in contents]
    zero = np.zeros_like(np.asarray(contents[0])).tolist() if len(rows) else 0

    async def read_port(ctx):
        pending = [None] * latency      # addresses sampled at the last `latency` edges
        async for _, _, address in ctx.tick().sample(addr):
            if not isinstance(address, int):   # its copies
                assert len(set(address)) == 1, f"the address's copies differ: {list(address)}"
                address = address[0]
            pending = [int(address)] + pending[:-1]
            word = pending[-1]
            if word is not None:
                ctx.set(data_out, rows[word] if word < len(rows) else zero)

    sim.add_process(read_port)


def add_trace(sim, **signals) -> list[dict]:
    """Sample `signals` (name=value) at every clock edge; returns the list it fills, one
    dict of plain values per edge, in edge order (the index is the edge's number)."""
    names = list(signals)
    trace: list[dict] = []

    async def tracer(ctx):
        async for _, _, *values in ctx.tick().sample(*signals.values()):
            trace.append({name: plain(v) for name, v in zip(names, values)})

    sim.add_process(tracer)
    return trace
