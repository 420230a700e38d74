"""Embedding inputs (issue 15 §2): nn.Embedding -> RNN -> Linear, imported, quantized, and
built with a token ROM; token ids on the input stream; bit-exact against the integer
reference in Amaranth's simulator and (slow) in cocotb + Verilator."""
import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from amaranth_harness import run_accelerator
from hwgen.frontend import UnsupportedModelError, from_torch
from hwgen.interface import payloads, sequence_words, token_payload, token_width
from hwgen.ir import TokenIdError
from hwgen.nn import RecurrentClassifier
from hwgen.quant import CalibrationDataError, QuantConfig, embedding_design, quantize_model
from hwgen.ref import DeltaStats, run_float, run_int
from hwgen.rtl.cycles import cycle_model, embed_cycles
from hwgen.rtl.emit import generate
from hwgen.rtl.top import Accelerator

VOCAB, EMBED, HIDDEN, OUT = 13, 5, 7, 3   # odd sizes: lanes never divide the rows


def embedding_model(cell="gru", head_mode="every", layers=1, seed=0):
    torch.manual_seed(seed)
    return RecurrentClassifier(cell, EMBED, HIDDEN, OUT, layers, head_mode,
                               embedding=VOCAB).eval()


def tokens(rng, n=4, t_len=5):
    """(N, T, 1) token ids, every id among them."""
    x = rng.integers(0, VOCAB, (n, t_len, 1))
    x.flat[:VOCAB] = np.arange(VOCAB)
    return x


def quantized(rng, cell="gru", head_mode="every", layers=1, bits=8, design="auto"):
    x = tokens(rng)
    qm = quantize_model(from_torch(embedding_model(cell, head_mode, layers)), x,
                        QuantConfig(weight_bits=bits, act_bits=bits, embedding=design))
    return qm, x


def torch_out(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x)).double().numpy()


# ---------------------------------------------------------------- import and references

@pytest.mark.parametrize("cell,head_mode", [("gru", "every"), ("lstm", "last"),
                                            ("ligru", "last"), ("sru", "every")])
def test_float_model_equals_torch(cell, head_mode, rng):
    model = embedding_model(cell, head_mode, layers=2)
    ir = from_torch(model)
    assert (ir.vocab_size, ir.input_size, ir.layers[0].input_size) == (VOCAB, 1, EMBED)
    x = tokens(rng)
    assert np.abs(run_float(ir, x) - torch_out(model, x)).max() < 1e-5


def test_sequential_embedding_import(rng):
    torch.manual_seed(1)
    emb, rnn, head = nn.Embedding(VOCAB, EMBED, padding_idx=0), \
        nn.LSTM(EMBED, HIDDEN, batch_first=True), nn.Linear(HIDDEN, OUT)
    ir = from_torch(nn.Sequential(emb, rnn, head), head_mode="every")
    x = tokens(rng)
    with torch.no_grad():
        want = head(rnn(emb(torch.as_tensor(x[..., 0])))[0]).double().numpy()
    assert np.abs(run_float(ir, x) - want).max() < 1e-5
    assert "V=13 E=5" in ir.describe()


@pytest.mark.parametrize("emb,message", [
    (nn.Embedding(VOCAB, EMBED, max_norm=1.0), "max_norm=1.0"),
    (nn.EmbeddingBag(VOCAB, EMBED), "Unsupported Sequential\\[0\\] EmbeddingBag"),
    (nn.Embedding(VOCAB, EMBED + 1), "gives 6 values per token but the first recurrent "
                                     "layer takes 5"),
])
def test_unsupported_embeddings_refused_by_name(emb, message):
    model = nn.Sequential(emb, nn.GRU(EMBED, HIDDEN, batch_first=True), nn.Linear(HIDDEN, OUT))
    with pytest.raises(UnsupportedModelError, match=message):
        from_torch(model)


def test_token_ids_are_checked(rng):
    ir = from_torch(embedding_model())
    with pytest.raises(TokenIdError, match="0..12"):
        run_float(ir, np.full((1, 2, 1), VOCAB))
    with pytest.raises(TokenIdError, match="whole numbers"):
        run_float(ir, np.full((1, 2, 1), 0.5))
    with pytest.raises(CalibrationDataError, match="token ids must lie in 0..12"):
        quantize_model(ir, np.full((1, 2, 1), -1))


def test_integer_reference_follows_float(rng):
    qm, x = quantized(rng)
    ir = from_torch(embedding_model())
    y = qm.decode_outputs(run_int(qm, qm.quantize_inputs(x)))
    assert np.abs(y - run_float(ir, x)).max() < 0.05
    # the table is the first layer's input, in its format, and part of the weight memory
    assert qm.embedding.shape == (VOCAB, EMBED)
    assert np.abs(qm.embedding).max() <= qm.input_fmt.max_int
    assert np.array_equal(run_int(qm, x, delta=[(0, 0)]), run_int(qm, x))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_folded_quantization(cell, rng):
    ir = from_torch(embedding_model(cell))
    qm, x = quantized(rng, cell, design="folded")
    first = qm.layers[0]
    assert (qm.embedding_design, qm.vocab_size, qm.input_size) == ("folded", VOCAB, 1)
    # the folded table W_x E is layer 0's input weight matrix, in its calibrated format
    folded = ir.layers[0].w_ih @ ir.embedding.T
    rows = first.spec.accumulator_weights(folded, ir.layers[0].w_hh, HIDDEN)[0]
    assert np.array_equal(first.w_x, first.wx_fmt.quantize(rows))
    assert qm.one == 1 << (8 - 2) and first.x_fmt.max_int >= qm.one
    y = qm.decode_outputs(run_int(qm, x))
    assert np.abs(y - run_float(ir, x)).max() < 0.05
    # a token change fires the input side whatever the threshold
    assert np.array_equal(run_int(qm, x, delta=[(10**6, 0)]), run_int(qm, x))


def test_design_chosen_by_memory():
    narrow = from_torch(embedding_model())          # E=5 < 3H V / (V + 3H) = 8.0: ROM
    assert embedding_design(narrow, QuantConfig()) == "token_rom"
    torch.manual_seed(0)
    wide = from_torch(RecurrentClassifier("gru", 9, HIDDEN, OUT, embedding=VOCAB).eval())
    assert embedding_design(wide, QuantConfig()) == "folded"
    assert embedding_design(wide, QuantConfig(embedding="token_rom")) == "token_rom"
    # at 2-bit weights the ROM's table (activation-wide) outweighs the folded table
    assert embedding_design(narrow, QuantConfig(weight_bits=4)) == "token_rom"
    assert embedding_design(narrow, QuantConfig(weight_bits=2)) == "folded"


def test_memory_both_ways():
    qm, _ = quantized(np.random.default_rng(0), cell="lstm")
    mem = qm.embedding_memory()
    rows = 4 * HIDDEN
    assert mem["token_rom_bits"] == VOCAB * EMBED * 8 + rows * EMBED * 8
    assert mem["folded_bits"] == rows * VOCAB * 8
    without = dataclasses.replace(qm, embedding=None)
    assert qm.memory_bits()["weight_bits"] - without.memory_bits()["weight_bits"] == \
        VOCAB * EMBED * 8


# ---------------------------------------------------------------- stream payload

def test_token_payload():
    assert token_width(256) == 8 and token_width(257) == 9 and token_width(1) == 1
    p = token_payload(13)
    words = sequence_words(p, [[12], [0]])
    assert [p.decode(w) for w in words] == [{"token": 12, "step_end": 1, "seq_end": 0},
                                            {"token": 0, "step_end": 1, "seq_end": 1}]
    first, _ = payloads({"interface": {"in_width": 4, "out_width": 8, "vocab_size": 13}})
    assert first == p
    with pytest.raises(ValueError, match="token = 16 does not fit the 4-bit field"):
        p.encode(token=16, step_end=0, seq_end=0)


def test_host_framing_takes_token_ids():
    from hwgen.host import Framing, FramingError
    framing = Framing(4, 8, vocab_size=13)
    assert framing.encode(12, True, False) == bytes([12 | 16])
    with pytest.raises(FramingError, match="Token 13 is not an id of the 13-token vocabulary"):
        framing.encode(13, True, False)


# ---------------------------------------------------------------- RTL in Amaranth's simulator

@pytest.mark.parametrize("cell,head_mode,lanes,theta,design", [
    ("gru", "every", 3, None, "token_rom"), ("lstm", "last", 1, None, "folded"),
    ("gru", "last", 1, 3, "token_rom"), ("lstm", "every", 3, 0, "token_rom"),
    ("gru", "every", 3, 0, "folded"), ("gru", "last", 1, 200, "folded"),
    ("sru", "every", 3, None, "folded"), ("ligru", "last", 3, 2, "folded"),
])
def test_rtl_bit_exact_under_stalls(cell, head_mode, lanes, theta, design, rng):
    qm, x = quantized(rng, cell, head_mode, design=design)
    x[0, 2:4] = x[0, 1]   # a repeated token: a delta pass fires no token column
    delta = None if theta is None else [(theta, theta)]
    got, _ = run_accelerator(Accelerator(qm, lanes, delta=delta), x, head_mode, OUT,
                             0.3, 0.3, seed=lanes)
    assert np.array_equal(got, run_int(qm, x, delta=delta))


@pytest.mark.parametrize("cell,layers,lanes,design", [("gru", 1, 3, "token_rom"),
                                                       ("lstm", 2, 1, "token_rom"),
                                                       ("gru", 2, 3, "folded")])
def test_cycle_model_matches_simulation(cell, layers, lanes, design, rng):
    qm, x = quantized(rng, cell, "every", layers, design=design)
    acc = Accelerator(qm, lanes)
    model = cycle_model(acc.plan, qm.input_size)
    first = acc.plan.layers[0]
    if design == "token_rom":
        assert model["load"] == 1 + embed_cycles(acc.plan) == 1 + EMBED + 1
        assert first.visited_columns == EMBED + HIDDEN
    else:  # layer 0's input side: one column a step, the token's
        assert model["load"] == 1 and first.visited_columns == 1 + HIDDEN
        assert first.macs == HIDDEN * 3 * (1 + HIDDEN)
    _, c2 = run_accelerator(acc, x[:1, :2], "every", OUT)
    _, c3 = run_accelerator(acc, x[:1, :3], "every", OUT)
    assert c3 - c2 == model["per_step"] + model["head"]


def test_manifest_reports_embedding(tmp_path, rng):
    qm, x = quantized(rng, "gru", "last")
    design = generate(qm, tmp_path / "emb", lanes=3, inputs=x)
    manifest = json.loads((design / "manifest.json").read_text())
    iface, emb = manifest["interface"], manifest["embedding"]
    assert (iface["vocab_size"], iface["in_width"]) == (VOCAB, 4)
    assert iface["in_payload"] == {"token": [0, 4], "step_end": [4, 1], "seq_end": [5, 1]}
    assert emb["design"] == "token_rom"
    assert emb["token_rom_bits"] < emb["folded_bits"] == 3 * HIDDEN * VOCAB * 8
    # folded: one token column instead of EMBED's E + 1 cycles and E input columns, each
    # of 3 blocks x ceil(7 / 3) weight words
    cycles = emb["cycles_per_step"]
    assert cycles["token_rom"] == manifest["cycles"]["per_step"]
    assert cycles["token_rom"] - cycles["folded"] == EMBED + 1 + (EMBED - 1) * 3 * 3
    qm, x = quantized(rng, "gru", "last", design="folded")
    folded = json.loads((generate(qm, tmp_path / "f", lanes=3, inputs=x)
                         / "manifest.json").read_text())
    assert folded["embedding"]["cycles_per_step"] == cycles
    assert "token_rom" not in folded["memories"] and folded["embedding"]["design"] == "folded"


# ---------------------------------------------------------------- cocotb + Verilator

@pytest.mark.slow
@pytest.mark.parametrize("cell,head_mode,lanes,theta,design", [
    ("lstm", "last", 1, None, "token_rom"), ("gru", "every", 3, 2, "folded")])
def test_verilog_bit_exact(cell, head_mode, lanes, theta, design, tmp_path):
    from hwgen.sim import simulate
    rng = np.random.default_rng(lanes)
    qm, _ = quantized(rng, cell, head_mode, bits=6, design=design)
    x = np.concatenate([tokens(rng, 30, 6), np.full((2, 6, 1), VOCAB - 1)])  # repeats: no delta
    delta = None if theta is None else [(theta, theta)]
    design = generate(qm, tmp_path / "design", lanes=lanes, inputs=x, delta=delta)
    result = simulate(design, seed=lanes, stall_in=0.3, stall_out=0.3)
    assert result.vectors == len(x) and result.compared > 0
    assert result.mismatches == 0, result.first_mismatch
    if theta is None:
        cycles = json.loads((design / "manifest.json").read_text())["cycles"]
        assert result.model_per_step == cycles["model_per_step"]


# ---------------------------------------------------------------- the bundled word model

def test_cli_generates_the_bundled_word_model(tmp_path, capsys):
    from hwgen import flow
    from hwgen.cli import EXIT_OK, main
    from hwgen.design_folder import load_manifest
    assert main(["list"]) == EXIT_OK
    assert "wordlm_gru     GRU V=256 E=24 H=48" in capsys.readouterr().out
    assert main(["generate", "wordlm_gru", "--lanes", "3", "--sequences", "2", "--out",
                 str(tmp_path)]) == EXIT_OK
    design = tmp_path / "wordlm_gru_p3"
    manifest = load_manifest(design)
    assert manifest["interface"]["vocab_size"] == 256
    assert manifest["embedding"]["folded_bits"] == 3 * 48 * 256 * 8
    vectors = np.load(design / "vectors.npz")
    task = flow.load_task("wordlm_gru")
    assert np.array_equal(vectors["inputs"], task.x_test[:2].astype(np.int64))
    qm = flow.quantize(task, QuantConfig(weight_bits=8, act_bits=8))
    assert np.array_equal(vectors["outputs"], run_int(qm, vectors["inputs"]))


def test_folded_delta_counts_token_columns(rng):
    """What a folded delta pass visits: the previous and the new token's column on the
    first step and on every change, none on a repeat (the hardware's token columns)."""
    qm, _ = quantized(rng, design="folded")
    stats = DeltaStats()
    x = np.array([[[3], [3], [5], [5], [3]]])
    run_int(qm, x, delta=[(0, 10**6)], stats=stats)   # h fires on the first step only
    assert stats.fired_per_step[0].tolist() == [2 + HIDDEN, 0, 2, 0, 2]
    assert stats.columns == [5 * (1 + HIDDEN)]
    assert stats.macs_dense == [5 * 3 * HIDDEN * (1 + HIDDEN)]
