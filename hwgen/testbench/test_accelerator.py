"""cocotb testbench for any generated accelerator: every output bit-exact against vectors.npz.

The design is described by its folder (``manifest.json``, ``vectors.npz``); options come
from environment variables, set by `hwgen.sim.simulate`:

``HWGEN_DESIGN_DIR``   the design folder (required)
``HWGEN_SEED``         seed of the stall patterns (default 0)
``HWGEN_STALL_IN``     probability of an idle cycle before each input element (default 0.3)
``HWGEN_STALL_OUT``    probability that ``o.ready`` is low in a cycle (default 0.3)
``HWGEN_MAX_SEQ``      use only the first sequences (default: all)
``HWGEN_SEQUENCES``    comma-separated sequence indices to run instead (re-runs)
``HWGEN_PASSES``       comma-separated passes among ``timing,stall`` (default both)
``HWGEN_WATCHDOG``     cycles without any transfer before the run fails (default from manifest)
``HWGEN_RESULT_JSON``  where to write the result

Pass ``timing`` sends every sequence back to back with no stalls and measures cycles per
step; pass ``stall`` repeats the sequences under random idle and backpressure. Each
sequence draws its stall pattern from its own seed, so re-running it alone reproduces it.
Besides every output's data and ``last`` bit, the monitor checks the stream rule that a
valid output holds its payload until it is taken, and that no output comes unasked.

A design whose weights load (``interface.weights`` in the manifest) first gets its weight
image file on the ``weights`` stream, a byte a beat, idle before a beat with the
``HWGEN_STALL_IN`` probability, while the first pass already offers its inputs: an input
taken before the image's last byte is a mismatch (kind ``early``).
"""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import convert, get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout

from hwgen.design_folder import load_manifest, step_cycles
from hwgen.interface import payloads, sequence_words

CLOCK_NS = 10
POLL_CYCLES = 16    # idle cycles polled one by one before sleeping until a signal rises
DRAIN_CYCLES = 20   # cycles after the last input of a pass in which no output may come


class Watchdog(Exception):
    """The design made no transfer on either stream for too long."""


def _stats(values):
    if not values:
        return None
    return {"mean": float(np.mean(values)), "min": float(np.min(values)),
            "max": float(np.max(values))}


class Checker:
    """Compare outputs with the reference (N, O) or (N, T, O); count and keep the first
    mismatch. In head mode "last" a mismatch is reported at the last step.

    Mismatch kinds: ``data`` (wrong data or ``last`` bit), ``unstable`` (a valid output
    dropped or changed before it was taken), ``extra`` (an output nobody expected).
    """

    def __init__(self, outputs, t_len):
        self.every, self.out_size, self.t_len = outputs.ndim == 3, outputs.shape[-1], t_len
        self.outputs = outputs.reshape(outputs.shape[0], -1).tolist()
        self.compared = self.mismatches = 0
        self.first = None
        self.kinds = {}             # (pass, kind) -> count
        self.last_out = {}          # sequence index -> cycle of its last output
        self.pass_name = None

    def expected(self, index):
        """Return the expected outputs of sequence `index`, in the order they arrive."""
        return self.outputs[index]

    def mismatch(self, kind, index, k, expected, got, cycle, **extra):
        """Count a mismatch at output `k` of sequence `index`, keeping the first."""
        self.mismatches += 1
        key = (self.pass_name, kind)
        self.kinds[key] = self.kinds.get(key, 0) + 1
        if self.first is None:
            o = self.out_size
            step = None if index is None else k // o if self.every else self.t_len - 1
            self.first = {"pass": self.pass_name, "kind": kind, "sequence": index,
                          "step": step, "output": None if index is None else k % o,
                          "expected": expected, "got": got, "cycle": int(cycle), **extra}

    def __call__(self, index, k, data, last, cycle):
        """Check output `k` of sequence `index`."""
        expected = self.outputs[index][k]
        last_expected = int(k % self.out_size == self.out_size - 1)
        self.compared += 1
        if data != expected or last != last_expected:
            self.mismatch("data", index, k, expected, data, cycle,
                          last_expected=last_expected, last_got=last)
        self.last_out[index] = cycle


class TB:
    """Clock, reset, input driver and output monitor of one accelerator.

    Parameters
    ----------
    dut : cocotb handle
        The Verilog top.
    manifest : dict
        The design's manifest.
    seed : int
        Seed of the stall patterns.
    watchdog : int
        Cycles without a transfer on either stream after which a pass fails.
    """

    def __init__(self, dut, manifest, seed=0, watchdog=10_000):
        iface = manifest["interface"]
        self.dut, self.seed, self.watchdog = dut, seed, watchdog
        self.clk = getattr(dut, iface.get("clock", "clk"))
        self.rst = getattr(dut, iface.get("reset", "rst"))
        self.in_payload, self.out_payload = payloads(manifest)
        self.period = convert(CLOCK_NS, "ns", to="step")
        self.accepted = self.received = 0     # transfers so far, for the watchdog
        self._valid = self._ready = 0
        Clock(self.clk, CLOCK_NS, unit="ns").start()

    def cycle(self):
        """Return the number of the current clock cycle."""
        return get_sim_time("step") // self.period

    def decode(self, raw):
        """Split an output payload into (signed data, last)."""
        fields = self.out_payload.decode(raw)
        return fields["data"], fields["last"]

    def encode(self, x):
        """Encode one (T, I) sequence as input payload words."""
        return sequence_words(self.in_payload, x)

    async def wait_high(self, signal, what):
        """Sleep until `signal` rises; raise `Watchdog` if meanwhile neither stream moves
        for the watchdog time. Long idle stretches so cost no Python work per cycle."""
        while True:
            seen = (self.accepted, self.received)
            try:
                await with_timeout(RisingEdge(signal), self.watchdog * CLOCK_NS, "ns")
                return
            except SimTimeoutError:
                if (self.accepted, self.received) == seen:
                    raise Watchdog(f"no transfer for {self.watchdog} cycles, waiting for "
                                   f"{what}") from None

    async def reset(self):
        """Hold reset for a few cycles with the streams idle."""
        if hasattr(self.dut, "weights__valid"):
            self.dut.weights__valid.value = 0
        self.dut.i__valid.value = self._valid = 0
        self.dut.o__ready.value = self._ready = 0
        self.rst.value = 1
        await ClockCycles(self.clk, 3)
        self.rst.value = 0
        await RisingEdge(self.clk)

    async def load_weights(self, image, stall, checker, log):
        """Send the weight image `image` (bytes) on the ``weights`` stream, idling before a
        beat with probability `stall`; an input taken meanwhile is a mismatch. Appends the
        cycles the load took to `log`."""
        valid, payload, ready = (self.dut.weights__valid, self.dut.weights__payload,
                                 self.dut.weights__ready)
        rng, start = random.Random(f"{self.seed}/weights"), self.cycle()

        def early():
            if self.dut.i__valid.value and self.dut.i__ready.value:
                checker.mismatch("early", None, None, None, None, self.cycle())
        for byte in image:
            while stall and rng.random() < stall:
                valid.value = 0
                await RisingEdge(self.clk)
                early()
            payload.value = byte
            valid.value = 1
            await RisingEdge(self.clk)
            early()
            while not ready.value:
                await RisingEdge(self.clk)
                early()
            self.accepted += 1    # a transfer, for the watchdog
        valid.value = 0
        log.append(self.cycle() - start)

    async def drive(self, sequences, stall, name, log):
        """Send `sequences` [(index, (T, I) list)], idling before an element with
        probability `stall`; append (first accept, [step_end accepts]) per sequence to `log`."""
        valid, payload, ready = self.dut.i__valid, self.dut.i__payload, self.dut.i__ready
        for index, x in sequences:
            rng = random.Random(f"{self.seed}/{name}/{index}/in")
            i_size, first, ends = len(x[0]), None, []
            for k, word in enumerate(self.encode(x)):
                while stall and rng.random() < stall:
                    if self._valid:
                        valid.value = self._valid = 0
                    await RisingEdge(self.clk)
                payload.value = word
                if not self._valid:
                    valid.value = self._valid = 1
                await RisingEdge(self.clk)
                idle = 0
                while not ready.value:
                    idle += 1
                    if idle >= POLL_CYCLES:   # the monitor's watchdog catches a hang
                        await RisingEdge(ready)
                    await RisingEdge(self.clk)
                self.accepted += 1
                if k == 0:
                    first = self.cycle()
                if k % i_size == i_size - 1:
                    ends.append(self.cycle())
            log.append((first, ends))
        valid.value = self._valid = 0

    async def monitor(self, sequences, stall, name, checker):
        """Take the outputs of `sequences` [indices], with `o.ready` low in a cycle with
        probability `stall`, and hand each to `checker`."""
        valid, payload, ready = self.dut.o__valid, self.dut.o__payload, self.dut.o__ready
        for index in sequences:
            rng = random.Random(f"{self.seed}/{name}/{index}/out")
            k, n, idle, held = 0, len(checker.expected(index)), 0, None
            while k < n:
                want = int(not (stall and rng.random() < stall))
                if want != self._ready:
                    ready.value = self._ready = want
                await RisingEdge(self.clk)
                if not valid.value:
                    if held is not None:
                        checker.mismatch("unstable", index, k, self.decode(held)[0], None,
                                         self.cycle())
                        held = None
                    idle += 1
                    if idle >= POLL_CYCLES:
                        await self.wait_high(valid, f"output {k} of sequence {index} in "
                                                    f"pass {name!r}")
                        idle = 0
                    continue
                raw = payload.value.to_unsigned()
                if held is not None and raw != held:
                    checker.mismatch("unstable", index, k, self.decode(held)[0],
                                     self.decode(raw)[0], self.cycle())
                if self._ready:
                    checker(index, k, *self.decode(raw), self.cycle())
                    k, held, idle = k + 1, None, 0
                    self.received += 1
                else:
                    held = raw

    async def drain(self, checker, driver):
        """Keep `o.ready` high until `driver` is done and a while after; any output now is
        an extra one."""
        self.dut.o__ready.value = self._ready = 1
        left, idle = DRAIN_CYCLES, 0
        while left:
            await RisingEdge(self.clk)
            if driver.done():
                left -= 1
            elif idle > self.watchdog:
                raise Watchdog("all outputs came, but not all inputs were accepted")
            idle += 1
            if self.dut.o__valid.value:
                got = self.decode(self.dut.o__payload.value.to_unsigned())[0]
                checker.mismatch("extra", None, None, None, got, self.cycle())


def _env_list(name):
    return [s.strip() for s in os.environ.get(name, "").split(",") if s.strip()]


async def run_test(tb, checker, inputs, indices, stall_in, stall_out, name):
    """Send the sequences `indices` once under the given stall probabilities, check every
    output and return the pass's measurements."""
    tb.dut._log.info("pass %s: %d sequences, stall in %.2f out %.2f", name, len(indices),
                     stall_in, stall_out)
    checker.pass_name = name
    log = []
    start_cycle, t0 = tb.cycle(), time.perf_counter()
    driver = cocotb.start_soon(tb.drive([(s, inputs[s].tolist()) for s in indices],
                                        stall_in, name, log))
    try:
        await tb.monitor(indices, stall_out, name, checker)
        await tb.drain(checker, driver)
    finally:
        if not driver.done():
            driver.cancel()
    cycles, wall = tb.cycle() - start_cycle, time.perf_counter() - t0
    t_len = inputs.shape[1]
    per_step = [(checker.last_out[s] - first + 1) / t_len for s, (first, _) in zip(indices, log)]
    step_ends = [c for _, ends in log for c in ends]
    # a design that loads the next step's input early (`Plan.overlap`) accepts a step's
    # input before its step runs: its throughput shows in the sequences' last outputs
    seq_ends = [checker.last_out[s] for s in indices]
    return {"sequences": len(indices), "stall_in": stall_in, "stall_out": stall_out,
            "mismatches": {k: n for (p, k), n in checker.kinds.items() if p == name},
            "cycles": int(cycles), "wall_time": wall, "cycles_per_step": _stats(per_step),
            "step_interval": _stats(np.diff(step_ends).tolist()),
            "sequence_interval": _stats(np.diff(seq_ends).tolist())}


@cocotb.test()
async def check_accelerator(dut):
    """Run the vectors through the design and compare each output bit for bit."""
    design = Path(os.environ["HWGEN_DESIGN_DIR"])
    manifest = load_manifest(design)
    vectors = np.load(design / "vectors.npz")
    inputs, outputs = vectors["inputs"].astype(np.int64), vectors["outputs"].astype(np.int64)
    if manifest["head_mode"] == "every":
        outputs = outputs.reshape(outputs.shape[0], -1, manifest["sizes"]["output_size"])
    stall_in = float(os.environ.get("HWGEN_STALL_IN", "0.3"))
    stall_out = float(os.environ.get("HWGEN_STALL_OUT", "0.3"))
    indices = [int(s) for s in _env_list("HWGEN_SEQUENCES")]
    if not indices:
        max_seq = int(os.environ.get("HWGEN_MAX_SEQ") or len(inputs))
        indices = list(range(min(max_seq, len(inputs))))
    passes = _env_list("HWGEN_PASSES") or ["timing", "stall"]
    cycles = manifest.get("cycles", {})
    model = step_cycles(cycles) or 1000
    watchdog = int(os.environ.get("HWGEN_WATCHDOG") or 10_000 + 50 * int(model))

    tb = TB(dut, manifest, seed=int(os.environ.get("HWGEN_SEED", "0")), watchdog=watchdog)
    checker = Checker(outputs, inputs.shape[1])
    weights = manifest["interface"].get("weights")
    image = None if weights is None else (design / weights["file"]).read_bytes()
    if image is not None and len(image) != weights["beats"]:
        raise ValueError(f"{weights['file']} holds {len(image)} bytes, not the manifest's "
                         f"{weights['beats']}")
    load_log = []
    # what a full run compares; a run that compared fewer (or nothing) has failed
    expected = len(passes) * sum(len(checker.expected(i)) for i in indices)
    result = {"design": manifest.get("name"), "top": manifest["interface"]["top"],
              "vectors": len(indices), "steps": int(inputs.shape[1]), "passes": {},
              "expected": expected, "error": None}
    t0 = time.perf_counter()
    try:
        await tb.reset()
        if image is not None:   # the first pass's inputs must wait for it
            loader = cocotb.start_soon(tb.load_weights(image, stall_in, checker, load_log))
        patterns = {"timing": (0.0, 0.0), "stall": (stall_in, stall_out)}
        for name in passes:
            result["passes"][name] = await run_test(tb, checker, inputs, indices,
                                                    *patterns[name], name)
        if image is not None and not loader.done():
            raise Watchdog("every output came, but not the whole weight image was taken")
    except Watchdog as e:
        result["error"] = f"watchdog: {e}"
        raise
    finally:
        runs = result["passes"].values()
        cycles, wall = sum(r["cycles"] for r in runs), sum(r["wall_time"] for r in runs)
        timing = result["passes"].get("timing", {})
        if image is not None:
            result["weights"] = {"beats": len(image),
                                 "load_cycles": load_log[0] if load_log else None}
        result.update(compared=checker.compared, mismatches=checker.mismatches,
                      first_mismatch=checker.first, cycles=cycles,
                      wall_time=time.perf_counter() - t0,
                      cycles_per_second=cycles / wall if wall else None,
                      cycles_per_step=timing.get("cycles_per_step"),
                      step_interval=timing.get("step_interval"),
                      sequence_interval=timing.get("sequence_interval"))
        if os.environ.get("HWGEN_RESULT_JSON"):
            Path(os.environ["HWGEN_RESULT_JSON"]).write_text(json.dumps(result, indent=2))
    assert expected > 0 and checker.compared == expected, (
        f"compared {checker.compared} outputs of the {expected} expected")
    first = checker.first
    assert checker.mismatches == 0, (
        f"{checker.mismatches} mismatches in {checker.compared} outputs; first "
        f"({first['kind']}, pass {first['pass']}): sequence {first['sequence']} step "
        f"{first['step']} output {first['output']}: expected {first['expected']}, got "
        f"{first['got']}")
