"""cocotb testbench of a board's UART link around a design (``hwgen.boards.UARTBridge``).

The host side is played bit-serially on ``rx`` at ``divisor`` clock cycles per bit, with
random idle time between bytes, and ``tx`` is decoded bit by bit. Every output element is
compared with the design folder's ``vectors.npz`` (``inputs`` (N, T, I); ``outputs``
(N, O) or (N, T, O)). A design whose weights load gets its weight image first, after every
reset (docs/board_protocol.md).

Environment: ``HWGEN_DESIGN_DIR`` (the design folder), ``HWGEN_UART_DIVISOR``.
"""
import os
from pathlib import Path
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge
import numpy as np

from hwgen.design_folder import load_manifest
from hwgen.host import Framing

DESIGN = Path(os.environ["HWGEN_DESIGN_DIR"])
DIVISOR = int(os.environ["HWGEN_UART_DIVISOR"])


def _load():
    manifest = load_manifest(DESIGN)
    vectors = np.load(DESIGN / "vectors.npz")
    iface = manifest["interface"]
    return manifest, Framing(iface["in_width"], iface["out_width"], iface.get("vocab_size")), vectors


class TB:
    """Clock, reset, a bit-serial UART driver on ``rx`` and a decoder on ``tx``."""

    def __init__(self, dut, seed: int):
        self.dut = dut
        self.rng = random.Random(seed)
        self.received = []  # bytes decoded from tx
        self.tx_errors = 0

    async def start(self):
        self.dut.rx.value = 1
        self.dut.rst.value = 1
        Clock(self.dut.clk, 10, unit="ns").start()
        await ClockCycles(self.dut.clk, 5)
        self.dut.rst.value = 0
        cocotb.start_soon(self._tx_monitor())

    async def send_byte(self, byte: int):
        for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
            self.dut.rx.value = bit
            await ClockCycles(self.dut.clk, DIVISOR)

    async def send(self, data: bytes, max_gap_bits: int = 2):
        for byte in data:
            await self.send_byte(byte)
            gap = self.rng.randint(0, max_gap_bits * DIVISOR)
            if gap:
                await ClockCycles(self.dut.clk, gap)

    async def line_break(self, low_bits: int = 20, high_bits: int = 14):
        self.dut.rx.value = 0
        await ClockCycles(self.dut.clk, low_bits * DIVISOR)
        self.dut.rx.value = 1
        await ClockCycles(self.dut.clk, high_bits * DIVISOR)

    async def _tx_monitor(self):
        while True:
            await FallingEdge(self.dut.tx)
            await ClockCycles(self.dut.clk, DIVISOR // 2)
            if int(self.dut.tx.value) != 0:
                continue  # a glitch
            byte = 0
            for k in range(8):
                await ClockCycles(self.dut.clk, DIVISOR)
                byte |= int(self.dut.tx.value) << k
            await ClockCycles(self.dut.clk, DIVISOR)
            if int(self.dut.tx.value) != 1:
                self.tx_errors += 1
            self.received.append(byte)

    async def wait_bytes(self, count: int, max_cycles: int):
        waited = 0
        while len(self.received) < count and waited < max_cycles:
            await ClockCycles(self.dut.clk, DIVISOR)
            waited += DIVISOR
        assert len(self.received) >= count, \
            f"got {len(self.received)} of {count} output bytes"


async def _load_weights(tb, manifest):
    """Send the design's weight image, if its weights load: the first bytes after a reset."""
    weights = manifest["interface"].get("weights")
    if weights is not None:
        await tb.send((DESIGN / weights["file"]).read_bytes(), max_gap_bits=0)


def _expected(manifest, vectors):
    outputs = vectors["outputs"]
    n = outputs.shape[0]
    return outputs.reshape(n, -1, manifest["sizes"]["output_size"])


async def _run_sequences(tb, framing, manifest, vectors, first_byte: int = 0):
    inputs, expected = vectors["inputs"], _expected(manifest, vectors)
    assert expected.size > 0, "no outputs to compare: a check that compared nothing fails"
    o_size = expected.shape[2]
    count = first_byte
    for s in range(inputs.shape[0]):
        await tb.send(b"".join(framing.encode_sequence(inputs[s])))
        count += expected.shape[1] * o_size * framing.out_bytes
        await tb.wait_bytes(count, max_cycles=400 * DIVISOR * framing.out_bytes
                            + 100 * manifest["cycles"]["per_step"])
        data = bytes(tb.received[count - expected.shape[1] * o_size * framing.out_bytes:count])
        for k in range(expected.shape[1] * o_size):
            value, last = framing.decode(data[k * framing.out_bytes:(k + 1) * framing.out_bytes])
            v, o = divmod(k, o_size)
            assert value == expected[s, v, o], \
                f"sequence {s} vector {v} output {o}: got {value}, expected {expected[s, v, o]}"
            assert last == (o == o_size - 1), f"sequence {s} element {k}: last={last}"
    return count


@cocotb.test()
async def every_output_matches(dut):
    """All sequences of vectors.npz through the UART link, bit for bit."""
    manifest, framing, vectors = _load()
    tb = TB(dut, seed=1)
    await tb.start()
    await _load_weights(tb, manifest)
    await _run_sequences(tb, framing, manifest, vectors)
    assert tb.tx_errors == 0
    assert int(dut.overrun.value) == 0 and int(dut.frame_error.value) == 0


@cocotb.test()
async def break_resynchronises(dut):
    """A stray partial element, then a line break, then sequences that must still match."""
    manifest, framing, vectors = _load()
    tb = TB(dut, seed=2)
    await tb.start()
    await _load_weights(tb, manifest)
    if framing.in_bytes > 1:
        await tb.send(b"\x55")  # half an element: the framing is now off by a byte
    await tb.line_break()
    assert int(dut.overrun.value) == 0 and int(dut.frame_error.value) == 0
    await _load_weights(tb, manifest)   # a reset unloads them
    await _run_sequences(tb, framing, manifest, vectors, first_byte=len(tb.received))
