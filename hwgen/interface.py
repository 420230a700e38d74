"""The stream interface of every generated accelerator: payload layouts, encode and decode.

One definition, imported by the RTL (as Amaranth layouts), the emitter (the manifest's
``interface``), synthesis and board builds (payload widths), the host client and every
testbench (words to and from the Verilog ports ``i__payload`` / ``o__payload``).

Input stream, one element a transfer, LSB first: ``data`` (signed, the input width), then
``step_end`` (last element of a time step) and ``seq_end`` (last element of a sequence).
A model with an embedding takes one element per step, its token id: the input payload is
``token`` (unsigned, `token_width` of the vocabulary), then the same two flags.
Output stream: ``data`` (signed, the output width), then ``last`` (last element of a
head output vector).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Payload:
    """A stream payload: named fields packed LSB first; ``data`` is signed.

    Attributes
    ----------
    fields : tuple of (name, width)
        In packing order.
    """

    fields: tuple

    @property
    def bits(self) -> int:
        """Width of the payload word."""
        return sum(w for _, w in self.fields)

    @cached_property
    def _offsets(self) -> dict:
        at, out = 0, {}
        for name, width in self.fields:
            out[name], at = at, at + width
        return out

    @property
    def bytes(self) -> int:
        """Bytes that carry one payload word on a byte link (the board's UART)."""
        return (self.bits + 7) // 8

    def offset(self, name: str) -> int:
        """Bit offset of field `name`."""
        return self._offsets[name]

    def width(self, name: str) -> int:
        """Width of field `name`."""
        return dict(self.fields)[name]

    @property
    def value_field(self) -> str:
        """The field that carries an element's value: ``data``, or ``token``."""
        return self.fields[0][0]

    def encode(self, **values) -> int:
        """Pack field values (``data`` a signed integer in range, ``token`` an unsigned one,
        flags 0/1) into a word."""
        word = 0
        for name, width in self.fields:
            value = int(values[name])
            lo = -(1 << (width - 1)) if name == "data" else 0
            hi = (1 << (width - 1)) - 1 if name == "data" else (1 << width) - 1
            if not lo <= value <= hi:
                raise ValueError(f"{name} = {value} does not fit the {width}-bit field")
            word |= (value & ((1 << width) - 1)) << self._offsets[name]
        return word

    def decode(self, word: int) -> dict:
        """Unpack a word into ``{field: value}`` (``data`` signed)."""
        word = int(word)
        if word >> self.bits:
            raise ValueError(f"word {word:#x} has bits set above the {self.bits}-bit payload")
        out = {}
        for name, width in self.fields:
            value = (word >> self._offsets[name]) & ((1 << width) - 1)
            if name == "data" and value >> (width - 1):
                value -= 1 << width
            out[name] = value
        return out

    def layout(self):
        """The Amaranth ``StructLayout`` of this payload (``data`` signed)."""
        from amaranth.hdl import signed
        from amaranth.lib import data
        return data.StructLayout({name: signed(width) if name == "data" else width
                                  for name, width in self.fields})

    def to_json(self) -> dict:
        """``{field: [offset, width]}``, as the manifest records it."""
        return {name: [self.offset(name), width] for name, width in self.fields}


def input_payload(width: int) -> Payload:
    """The input stream's payload for `width`-bit signed elements."""
    return Payload((("data", width), ("step_end", 1), ("seq_end", 1)))


def token_width(vocab_size: int) -> int:
    """Bits of a token id of a `vocab_size`-token vocabulary (ids 0..V-1)."""
    return max(1, (int(vocab_size) - 1).bit_length())


def token_payload(vocab_size: int) -> Payload:
    """The input stream's payload of a model with an embedding: one token id a step."""
    return Payload((("token", token_width(vocab_size)), ("step_end", 1), ("seq_end", 1)))


def model_input_payload(qm) -> Payload:
    """The input payload of a quantized model: token ids with an embedding, else data."""
    if qm.vocab_size is not None:
        return token_payload(qm.vocab_size)
    return input_payload(qm.input_fmt.width)


def output_payload(width: int) -> Payload:
    """The output stream's payload for `width`-bit signed head outputs."""
    return Payload((("data", width), ("last", 1)))


def payloads(manifest: dict) -> tuple[Payload, Payload]:
    """The (input, output) payloads of a design, from its manifest's ``interface``."""
    iface = manifest["interface"]
    vocab = iface.get("vocab_size")   # only a design with an embedding records it
    first = input_payload(iface["in_width"]) if vocab is None else token_payload(vocab)
    return first, output_payload(iface["out_width"])


def sequence_words(payload: Payload, x) -> list[int]:
    """Input words of one (T, I) integer sequence, with its step and sequence markers."""
    t_len, i_size = len(x), len(x[0])
    field = payload.value_field
    return [payload.encode(**{field: int(v)}, step_end=i == i_size - 1,
                           seq_end=i == i_size - 1 and t == t_len - 1)
            for t, row in enumerate(x) for i, v in enumerate(row)]
