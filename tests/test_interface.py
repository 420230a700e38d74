"""hwgen.interface: the one payload contract, checked against Amaranth's own packing."""
import pytest

from hwgen.interface import input_payload, output_payload, payloads, sequence_words


@pytest.mark.parametrize("width", [1, 2, 8, 13])
def test_encode_matches_the_amaranth_layout(width):
    for payload, fields in ((input_payload(width), ("step_end", "seq_end")),
                            (output_payload(width), ("last",))):
        layout = payload.layout()
        assert layout.size == payload.bits == width + len(fields)
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        for data in {lo, -1, 0, hi}:
            for flag in (0, 1):
                values = {"data": data, **{f: flag for f in fields}}
                packed = layout.const(values).as_value().value
                assert payload.encode(**values) == packed
                assert payload.decode(packed) == values


def test_out_of_range_refused():
    p = input_payload(8)
    with pytest.raises(ValueError, match="data = 128 does not fit the 8-bit field"):
        p.encode(data=128, step_end=0, seq_end=0)
    with pytest.raises(ValueError, match="has bits set above the 9-bit payload"):
        output_payload(8).decode(1 << 9)


def test_sequence_markers_and_manifest():
    words = sequence_words(input_payload(4), [[1, -1], [2, -8]])
    decoded = [input_payload(4).decode(w) for w in words]
    assert [(d["data"], d["step_end"], d["seq_end"]) for d in decoded] == [
        (1, 0, 0), (-1, 1, 0), (2, 0, 0), (-8, 1, 1)]
    i, o = payloads({"interface": {"in_width": 4, "out_width": 6}})
    assert (i.bits, o.bits, i.bytes, o.bytes) == (6, 7, 1, 1)
    assert o.to_json() == {"data": [0, 6], "last": [6, 1]}
