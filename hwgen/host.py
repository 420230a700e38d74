"""Host side of the board's UART link (docs/board_protocol.md).

:class:`BoardClient` sends a sequence of integer inputs, framed element by element, and
reads the design's integer outputs back; to a design whose weights load, it sends the weight
image first (after every reset). It talks to a serial port through pyserial, or to
any object with ``read(n)`` and ``write(data)`` (a loopback fake in tests).
"""
from __future__ import annotations

import json
from pathlib import Path
import time

import numpy as np

from .design_folder import step_cycles
from .interface import input_payload, output_payload, token_payload


class BoardTimeout(TimeoutError):
    """The board returned fewer output bytes than the sequence should produce."""


class FramingError(ValueError):
    """A value does not fit its field, or the board returned a malformed element."""


def _load_json(value) -> dict:
    if value is None or isinstance(value, dict):
        return value
    path = Path(value)
    if path.is_dir():                       # a design folder: checked before it is trusted
        from .design_folder import load_manifest
        return load_manifest(path)
    return json.loads(path.read_text())


class Framing:
    """Encoding of input elements and decoding of output elements for one design.

    Parameters
    ----------
    in_width, out_width : signed data widths of the manifest's ``interface``.
    vocab_size : the manifest's ``interface.vocab_size`` for a design with an embedding:
        the inputs are then token ids 0..V-1 (`hwgen.interface.token_payload`).
    """

    def __init__(self, in_width: int, out_width: int, vocab_size: int | None = None):
        self.in_width, self.out_width, self.vocab_size = in_width, out_width, vocab_size
        self.in_payload = input_payload(in_width) if vocab_size is None \
            else token_payload(vocab_size)
        self.out_payload = output_payload(out_width)
        self.in_bytes = self.in_payload.bytes
        self.out_bytes = self.out_payload.bytes

    def encode(self, value: int, step_end: bool, seq_end: bool) -> bytes:
        """One input element: the input payload word, little-endian."""
        if self.vocab_size is not None:
            if not 0 <= value < self.vocab_size:
                raise FramingError(f"Token {value} is not an id of the {self.vocab_size}-token "
                                   f"vocabulary")
        else:
            lo, hi = -(1 << (self.in_width - 1)), (1 << (self.in_width - 1)) - 1
            if not lo <= value <= hi:
                raise FramingError(f"Input {value} does not fit {self.in_width} signed bits")
        word = self.in_payload.encode(**{self.in_payload.value_field: value},
                                      step_end=step_end, seq_end=seq_end)
        return word.to_bytes(self.in_bytes, "little")

    def encode_sequence(self, inputs) -> list:
        """The bytes of each time step of a (T, I) integer sequence."""
        x = np.asarray(inputs)
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise FramingError(f"A sequence must be (T, I) integers, not shape {x.shape}")
        t_len, i_size = x.shape
        return [b"".join(self.encode(int(x[t, i]), i == i_size - 1,
                                     i == i_size - 1 and t == t_len - 1)
                         for i in range(i_size)) for t in range(t_len)]

    def decode(self, data: bytes) -> tuple[int, bool]:
        """One output element: ``(signed data, last)``."""
        word = int.from_bytes(data, "little")
        if word >> self.out_payload.bits:
            raise FramingError(f"Output element {data.hex()} has bits set above "
                               f"the {self.out_payload.bits}-bit payload")
        fields = self.out_payload.decode(word)
        return fields["data"], bool(fields["last"])


def _weight_image(manifest: dict, source, weights) -> bytes | None:
    """The weight image a design whose weights load needs first: `weights` (bytes or a
    path), or the file its manifest names in the design folder `source`; None when its
    weights are in ROM."""
    spec = manifest["interface"].get("weights")
    if spec is None:
        return None
    if weights is None:
        folder = Path(source) if isinstance(source, (str, Path)) else None
        if folder is None or not folder.is_dir():
            raise FramingError(f"The design loads its weights: give weights= (its "
                               f"{spec['file']}) or the design folder as the manifest")
        weights = folder / spec["file"]
    image = weights if isinstance(weights, (bytes, bytearray)) else Path(weights).read_bytes()
    if len(image) != spec["beats"]:
        raise FramingError(f"The weight image has {len(image)} bytes; the design takes "
                           f"{spec['beats']}")
    return bytes(image)


class BoardClient:
    """Run sequences on a board built by :func:`hwgen.boards.build_bitstream`.

    Parameters
    ----------
    port : a serial device name (opened with pyserial at ``baud``) or any object with
        ``read(n) -> bytes`` and ``write(data)``.
    manifest : the design's manifest (dict), its ``manifest.json`` or its design folder.
    board : the build's ``board.json`` (dict or path), for the link settings: ``baud``,
        ``clock_hz`` and ``fifo_bytes``. With ``clock_hz``, the client paces the steps it
        sends so the board's receive FIFO cannot overflow (see docs/board_protocol.md).
    weights : a design whose weights load (``interface.weights`` in its manifest): its
        weight image (bytes, or the path of its ``weights.bin``); by default read from the
        design folder, when ``manifest`` is one.
    baud : the UART rate when no ``board`` is given.
    timeout : seconds to wait for the outputs of a sequence.
    """

    def __init__(self, port, manifest, board=None, *, baud: int = 115200,
                 timeout: float = 5.0, weights=None):
        self.manifest = _load_json(manifest)
        self.weight_image = _weight_image(self.manifest, manifest, weights)
        self._weights_sent = False
        self.board = _load_json(board) or {}
        iface = self.manifest["interface"]
        self.framing = Framing(iface["in_width"], iface["out_width"], iface.get("vocab_size"))
        self.input_size = self.manifest["sizes"]["input_size"]
        self.output_size = self.manifest["sizes"]["output_size"]
        self.every_step = self.manifest.get("head_mode", "last") == "every"
        self.baud = self.board.get("baud", baud)
        self.timeout = timeout
        if isinstance(port, (str, Path)):
            import serial
            self.port = serial.Serial(str(port), self.baud, timeout=0.1)
            self._owns_port = True
        else:
            self.port, self._owns_port = port, False

    def close(self) -> None:
        """Close the serial port if this client opened it."""
        if self._owns_port:
            self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reset(self, seconds: float = 0.01) -> None:
        """Send a line break: the board resets the design and the link."""
        if hasattr(self.port, "send_break"):
            self.port.send_break(seconds)
            if hasattr(self.port, "reset_input_buffer"):
                self.port.reset_input_buffer()
        self._weights_sent = False   # the reset unloads them

    def load_weights(self) -> None:
        """Send the weight image (a design whose weights load; `run_sequence` does it
        before its first sequence and after a `reset`). The core takes a byte a cycle
        while it loads, faster than any UART: no pacing."""
        if self.weight_image is not None:
            self.port.write(self.weight_image)
            self._weights_sent = True

    def _step_seconds(self) -> float | None:
        """The time the board may need per step, or None when not pacing."""
        clock_hz = self.board.get("clock_hz")
        per_step = step_cycles(self.manifest.get("cycles") or {})
        if not clock_hz or not per_step:
            return None
        byte_s = 10 / self.baud
        out_bytes = self.framing.out_bytes * self.output_size * (1 if self.every_step else 0)
        return max(per_step / clock_hz, out_bytes * byte_s)

    def run_sequence(self, inputs) -> np.ndarray:
        """Send one (T, I) integer sequence; return the outputs: (T, O) when the head runs
        every step (``head_mode == "every"``), else (O,).

        Raises
        ------
        FramingError
            For inputs outside the input width or a malformed output element.
        BoardTimeout
            When the outputs do not all arrive within ``timeout`` seconds.
        """
        x = np.asarray(inputs)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise FramingError(f"A sequence must be (T, {self.input_size}) integers, "
                               f"not shape {x.shape}")
        steps = self.framing.encode_sequence(x)
        if not self._weights_sent:
            self.load_weights()
        vectors = len(steps) if self.every_step else 1
        expected = vectors * self.output_size * self.framing.out_bytes
        step_s = self._step_seconds()
        slack = max(1, self.board.get("fifo_bytes", 512) // max(1, len(steps[0])) - 1)
        received = bytearray()
        start = time.monotonic()
        for t, chunk in enumerate(steps):
            if step_s is not None:
                wait = start + (t - slack) * step_s - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self.port.write(chunk)
            waiting = getattr(self.port, "in_waiting", 0)
            if waiting:
                received += self.port.read(waiting)
        deadline = time.monotonic() + self.timeout
        while len(received) < expected:
            got = self.port.read(expected - len(received))
            if got:
                received += got
            elif time.monotonic() > deadline:
                raise BoardTimeout(f"Got {len(received)} of {expected} output bytes "
                                   f"within {self.timeout} s")
        return self._decode(bytes(received[:expected]), vectors)

    def _decode(self, data: bytes, vectors: int) -> np.ndarray:
        nb, o_size = self.framing.out_bytes, self.output_size
        values = []
        for k in range(vectors * o_size):
            value, last = self.framing.decode(data[k * nb:(k + 1) * nb])
            if last != (k % o_size == o_size - 1):
                raise FramingError(f"Output element {k} has last={int(last)}; expected "
                                   f"last only on element {o_size - 1} of each vector")
            values.append(value)
        out = np.array(values, dtype=np.int64).reshape(vectors, o_size)
        return out if self.every_step else out[0]
