"""Multi-level ternary weights: the fit, pruning, the integer contract, counts, QAT, the CLI."""
import json

import numpy as np
import pytest
import torch

from hwgen import flow, qat, ternary
from hwgen.cli import EXIT_ERROR, main
from hwgen.fixed import QFormat
from hwgen.ref import run_int


BIG_LM = "charlm_gru128_t2s80glr0p02"     # the shipped 2-level result of the large char LM
BIG_LM_LR = 0.02
BIG_LM_BPC = ("2.040", "2.083")           # float, ternary: bits per character (test split)


@pytest.fixture(scope="module")
def task():
    return flow.load_task("digits_gru")


def _error(w, planes, alpha, fmts):
    value = sum(f.to_float(a)[:, None] * p for p, a, f in zip(planes, alpha, fmts))
    return float(np.mean((w - value) ** 2))


@pytest.mark.parametrize("binary", [False, True])
def test_levels_are_exact_and_error_falls_with_levels(binary):
    w = np.random.default_rng(0).normal(0, 0.3, (24, 17))
    errors = []
    for levels in (1, 2, 3):
        planes, alpha, fmts = ternary.fit_levels(w, levels, binary=binary)
        assert planes.dtype == np.int8 and planes.shape == (levels, 24, 17)
        assert set(np.unique(planes)) <= ({-1, 1} if binary else {-1, 0, 1})
        assert all(f.width == ternary.ALPHA_BITS for f in fmts)
        errors.append(_error(w, planes, alpha, fmts))
    assert errors[0] > errors[1] > errors[2]


def test_torch_fake_quant_is_the_numpy_fit():
    w = np.random.default_rng(1).normal(0, 0.3, (12, 9))
    mask = np.random.default_rng(2).random(w.shape) > 0.4
    for binary in (False, True):
        planes, alpha, fmts = ternary.fit_levels(w, 2, mask, binary)
        value = sum(f.to_float(a)[:, None] * p for p, a, f in zip(planes, alpha, fmts))
        fake = qat.fake_levels(torch.from_numpy(w), torch.from_numpy(mask), 2, binary)
        np.testing.assert_array_equal(fake.detach().numpy(), value)


def test_pruning_is_exact_and_zeros_stay_zero_in_every_level():
    w = torch.from_numpy(np.random.default_rng(3).normal(0, 1, (30, 11)))
    assert qat.cubic_sparsity(0, 100, 0.8) == 0.0
    assert qat.cubic_sparsity(100, 100, 0.8) == 0.8
    mask = torch.ones_like(w, dtype=torch.bool)
    for s in (0.2, 0.5, 0.8, 0.9):
        new = qat.prune(w * mask, mask, s)
        assert int((~new).sum()) == round(s * w.numel())
        assert not bool((new & ~mask).any())        # once pruned, always pruned
        mask = new
    planes, _, _ = ternary.fit_levels(w.numpy(), 3, mask.numpy())
    assert not np.any(planes[:, ~mask.numpy()])


def test_pruning_over_the_model_keeps_more_of_the_larger_matrix_weights():
    gen = np.random.default_rng(5)
    params = {"a": torch.from_numpy(gen.normal(0, 1, (20, 10))),
              "b": torch.from_numpy(gen.normal(0, 3, (20, 10)))}
    ones = {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}
    each = qat.prune_all(params, ones, 0.8)
    assert [int(m.sum()) for m in each.values()] == [40, 40]
    whole = qat.prune_all(params, ones, 0.8, "model")
    kept = [int(m.sum()) for m in whole.values()]
    assert sum(kept) == 80 and kept[1] > 2 * kept[0]
    smallest_kept = min(float(p[whole[n]].abs().min()) for n, p in params.items())
    assert all(float(p[~whole[n]].abs().max()) <= smallest_kept for n, p in params.items())
    assert qat.result_tag("m", 2, 0.8, False, 100, "model") == "m_t2s80ge100"


def test_integer_contract_level_sums_equal_the_effective_weight():
    rng = np.random.default_rng(4)
    levels, rows, cols = 3, 13, 29
    fmts = [QFormat(8, 6), QFormat(8, 9), QFormat(8, 11)]
    t = ternary.TernaryMatrix(rng.integers(-1, 2, (levels, rows, cols)).astype(np.int8),
                              rng.integers(0, 128, (levels, rows)), fmts,
                              np.ones(rows, bool))
    x = rng.integers(-128, 128, (50, cols))
    assert t.frac == 11
    np.testing.assert_array_equal(t.level_sums(x), x @ t.weight().T)


def test_ternary_qmodel_runs_the_existing_reference(task):
    masks = [(np.abs(la.w_ih) > 0.3, np.abs(la.w_hh) > 0.3) for la in task.ir.layers]
    tm = ternary.ternarize(task.ir, task.x_calib, 2, masks=masks, layout="NTI")
    for ql, mats, (mx, mh) in zip(tm.qm.layers, tm.matrices, masks):
        np.testing.assert_array_equal(ql.w_x, mats["x"].weight())
        np.testing.assert_array_equal(ql.w_h, mats["h"].weight())
        assert ql.wh_fmt.frac == mats["h"].frac
        assert not np.any(mats["h"].planes[:, mats["h"].real_rows][:, ~mh])
        xq = tm.qm.quantize_inputs(task.x_test[:5, 0])
        np.testing.assert_array_equal(mats["x"].level_sums(xq), xq @ ql.w_x.T)
    y = run_int(tm.qm, tm.qm.quantize_inputs(task.x_test[:20]))
    assert y.shape == (20, 10)


def test_memory_and_operation_counts_of_a_hand_made_matrix():
    t1 = [[1, 0, -1], [0, 0, 0], [1, 1, 0], [0, -1, 0]]
    t2 = [[0, 0, 1], [0, 0, 0], [-1, 0, 0], [0, 1, 1]]
    t = ternary.TernaryMatrix(np.array([t1, t2], np.int8), np.ones((2, 4), np.int64),
                              [QFormat(8, 7), QFormat(8, 9)], np.ones(4, bool))
    assert t.counts() == {"weights": 12, "rows": 4, "cols": 3, "nonzero_words": 6,
                          "nonzero_digits": [5, 4]}
    # dense: 2 levels x 2 bits x 12; sparse: 3 column counts of 3 bits (0..4), 6 words of
    # a 2-bit row index and 2 x 2 digit bits; scales: 2 levels x 4 rows x 8 bits
    assert ternary.matrix_bits(t) == {"dense": 48, "sparse": 45, "form": "sparse",
                                      "planes": 45, "scales": 64}
    tm = ternary.TernaryModel(None, [{"x": t, "h": None}], binary=False)
    ops = ternary.op_counts(tm)
    assert ops == {"weights": 12, "binary_ops": 24, "word_ops": 12, "bit_ops": 9,
                   "word_speedup": 2.0, "bit_speedup": 24 / 9}


def test_tiny_qat_beats_post_training_ternarization(task):
    ptt = qat.int_metric(task, qat.post_training(task, 2, 0.8).qm)
    result = qat.train(task, 2, 0.8, epochs=2, max_batches=8, lr=1e-2)
    tm = qat.to_ternary(task, result)
    assert tm.pruned == {"l0.wx": round(0.8 * 384) / 384, "l0.wh": round(0.8 * 3072) / 3072}
    assert qat.int_metric(task, tm.qm) > ptt + 10


def test_tiny_qat_trains_the_char_lm_deterministically():
    """Two layers, a head every step, bits per character through the integer reference."""
    lm = flow.load_task("charlm_gru2")
    ptt = qat.int_metric(lm, qat.post_training(lm, 2, 0.8).qm)
    result = qat.train(lm, 2, 0.8, epochs=2, max_batches=8, lr=1e-2, threads=1)
    tm = qat.to_ternary(lm, result)
    assert tm.pruned == {f"l{k}.w{s}": round(0.8 * 3072) / 3072 for k in (0, 1) for s in "xh"}
    assert qat.int_metric(lm, tm.qm) < ptt - 0.3        # bits per character: lower is better
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:   # trained on one thread, and the caller's two threads are left as they were
        again = qat.train(lm, 2, 0.8, epochs=2, max_batches=8, lr=1e-2, threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(v, again.state_dict[k]) for k, v in result.state_dict.items())


def test_tiny_qat_gives_the_head_levels_too(tmp_path):
    """--head: the head is fake-quantized to its levels and pruned with the model's
    matrices; its integer weights are its levels' (the reference runs them), its planes
    zero where pruned, its bits and operations counted; its mask is saved and loaded."""
    lm = flow.load_task("charlm_gru2")
    kw = dict(epochs=1, max_batches=4, threads=1, scope="model")
    result = qat.train(lm, 2, 0.8, head=True, **kw)
    assert result.tag == "charlm_gru2_t2s80ghe1" and qat.HEAD in result.masks
    kept = sum(int(m.sum()) for m in result.masks.values())
    total = sum(m.numel() for m in result.masks.values())
    assert total - kept == round(0.8 * total)
    assert not result.state_dict[qat.HEAD][~result.masks[qat.HEAD]].any()
    tm = qat.to_ternary(lm, result)
    np.testing.assert_array_equal(tm.qm.head.weight, tm.head.weight())
    assert tm.qm.ternary_head is tm.head and tm.head.levels == 2
    assert not np.any(tm.head.planes[:, ~result.masks[qat.HEAD].numpy()])
    assert tm.pruned["head.w"] == 1 - result.masks[qat.HEAD].float().mean().item()
    plain = qat.to_ternary(lm, qat.train(lm, 2, 0.8, **kw))
    assert plain.head is None and "head.w" not in plain.pruned
    ops, mem = ternary.op_counts(tm), ternary.memory_report(tm)
    assert ops["weights"] == ternary.op_counts(plain)["weights"] + tm.qm.head.weight.size
    assert "head.w" in mem["matrices"]
    assert mem["weight_bits"] < ternary.memory_report(plain)["weight_bits"]
    qat.save(result, tmp_path)
    assert json.loads((tmp_path / f"{result.tag}.json").read_text())["head"] is True
    back = qat.load(tmp_path, result.tag)
    assert back.head and _same(back, result)
    assert all(torch.equal(m, back.masks[n]) for n, m in result.masks.items())


def test_a_head_pruned_on_its_own(tmp_path):
    """--head-sparsity: the head pruned to its own target, the layers' matrices to theirs
    over the model without it; the option is in the tag and the saved result."""
    lm = flow.load_task("charlm_gru2")
    result = qat.train(lm, 2, 0.8, epochs=1, max_batches=4, threads=1, scope="model",
                       head=True, head_sparsity=0.5)
    assert result.tag == "charlm_gru2_t2s80gh50e1"
    head = result.masks[qat.HEAD]
    assert head.numel() - int(head.sum()) == round(0.5 * head.numel())
    layers = [m for n, m in result.masks.items() if n != qat.HEAD]
    total = sum(m.numel() for m in layers)
    assert total - sum(int(m.sum()) for m in layers) == round(0.8 * total)
    tm = qat.post_training(lm, 2, 0.8, head=True, head_sparsity=0.3)
    assert tm.pruned["head.w"] == round(0.3 * 1024) / 1024
    assert all(v == round(0.8 * 3072) / 3072 for n, v in tm.pruned.items() if n != "head.w")
    qat.save(result, tmp_path)
    back = qat.load(tmp_path, result.tag)
    assert (back.head, back.head_sparsity) == (True, 0.5) and _same(back, result)


def _same(a, b):
    return all(torch.equal(v, b.state_dict[k]) for k, v in a.state_dict.items())


def test_tiny_distillation_changes_the_char_lm_and_is_reproducible(tmp_path):
    """Distillation from the float model: another result, the same one again, its own tag
    and metadata (none of it in a result without)."""
    lm = flow.load_task("charlm_gru2")
    kw = dict(epochs=2, max_batches=8, threads=1, scope="model")
    plain = qat.train(lm, 2, 0.8, **kw)
    kd = qat.train(lm, 2, 0.8, distill=0.5, **kw)
    assert not _same(plain, kd) and _same(kd, qat.train(lm, 2, 0.8, distill=0.5, **kw))
    assert not _same(kd, qat.train(lm, 2, 0.8, distill=0.5, temperature=2.5, **kw))
    assert (plain.tag, kd.tag) == ("charlm_gru2_t2s80ge2", "charlm_gru2_t2s80gd50e2")
    assert qat.result_tag(lm.name, 2, 0.8, False, 100, "model", 0.25, 2.5, 0.01) == \
        "charlm_gru2_t2s80gd25T2p5lr0p01e100"
    fast = qat.train(lm, 2, 0.8, distill=0.5, **{**kw, "lr": 0.01})
    assert fast.tag == "charlm_gru2_t2s80gd50lr0p01e2" and not _same(fast, kd)
    for r in (plain, kd, fast):
        qat.save(r, tmp_path)
        back = qat.load(tmp_path, r.tag)
        assert (back.distill, back.temperature, back.lr) == (r.distill, r.temperature, r.lr)
        assert _same(r, back)
    cached = qat.train_or_load(lm, 2, 0.8, False, tmp_path, epochs=2, scope="model",
                               distill=0.5, log=pytest.fail)    # found: not trained
    assert cached.tag == kd.tag and _same(cached, kd)
    assert not {"distill", "lr"} & set(json.loads((tmp_path / f"{plain.tag}.json").read_text()))
    tm = qat.to_ternary(lm, kd)
    assert round(sum(3072 * v for v in tm.pruned.values())) == round(0.8 * 4 * 3072)
    assert qat.int_metric(lm, tm.qm) < qat.int_metric(lm, qat.post_training(lm, 2, 0.8).qm)


def test_distillation_term_is_zero_against_itself_and_pulls_to_the_teacher():
    """With the teacher's own logits the step is the labels' step scaled by 1 - w."""
    torch.manual_seed(0)
    out = torch.randn(4, 5, 7, requires_grad=True)
    target = torch.randint(0, 7, (4, 5))

    class Opt:
        def zero_grad(self):
            out.grad = None

        def step(self):
            pass

    class Model:
        def parameters(self):
            return [out]

    grads = []
    for soft in (out.detach(), torch.zeros(4, 5, 7)):
        qat.distill_step(Model(), Opt(), out, target, soft, 0.5, 2.0)
        grads.append(out.grad.clone())
    ce = torch.nn.functional.cross_entropy(out.reshape(-1, 7), target.reshape(-1))
    full = torch.autograd.grad(ce, out)[0]
    norm = float(full.norm())
    scale = 0.5 if norm * 0.5 <= 1 else 1 / norm   # the step clips the gradient norm to 1
    torch.testing.assert_close(grads[0], full * scale)
    assert not torch.allclose(grads[1], grads[0])


def test_the_shipped_distilled_char_lm_is_80_percent_pruned_with_its_options():
    r = qat.load(qat.SHIPPED, "charlm_gru2_t2s80gd20lr0p01")
    assert (r.levels, r.sparsity, r.scope, r.distill, r.temperature, r.lr, r.epochs, r.seed,
            r.threads) == (2, 0.8, "model", 0.2, 1.0, 0.01, 30, 0, 1)
    kept = sum(int(m.sum()) for m in r.masks.values())
    total = sum(m.numel() for m in r.masks.values())
    assert total - kept == round(0.8 * total)
    assert all(not bool(r.state_dict[f"rnn.{n}"][~m].any()) for n, m in r.masks.items())


@pytest.mark.parametrize("argv,label,bpc", [
    ([], "t2s80", "2.526"), (["--global-pruning"], "t2s80g", "2.434"),
    (["--global-pruning", "--distill", "0.2", "--lr", "0.01"], "t2s80gd20lr0p01", "2.388"),
    (["--global-pruning", "--head"], "t2s80gh", "2.535"),    # the head with levels too
    (["--global-pruning", "--head", "--head-sparsity", "0"], "t2s80gh0", "2.465")])
def test_cli_loads_the_shipped_char_lm(capsys, tmp_path, argv, label, bpc):
    assert main(["ternary", "charlm_gru2", "--levels", "2", "--sparsity", "0.8", *argv,
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "training" not in out and not any(tmp_path.iterdir())
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[3:]}
    assert "bits/char" in out and rows["float32"] == "2.278" and rows[label] == bpc


def test_the_shipped_ligru_is_within_a_point_of_its_float_model_at_80_percent(capsys,
                                                                            tmp_path):
    """digits_ligru's shipped distilled 2-level result: loaded, not trained, each matrix
    80 % pruned, within 1 point of float accuracy (the integer reference on the test set)."""
    r = qat.load(qat.SHIPPED, "digits_ligru_t2s80d50e400")
    assert (r.levels, r.sparsity, r.scope, r.distill, r.temperature, r.epochs, r.seed,
            r.threads) == (2, 0.8, "matrix", 0.5, 1.0, 400, 0, 1)
    assert all(m.numel() - int(m.sum()) == round(0.8 * m.numel()) for m in r.masks.values())
    assert main(["ternary", "digits_ligru", "--levels", "2", "--sparsity", "0.8",
                 "--distill", "0.5", "--epochs", "400", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "training" not in out and not any(tmp_path.iterdir())
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert rows["float32"][1] == "98.06" and rows["t2s80d50e400"][1] == "97.78"
    assert float(rows["t2s80d50e400"][1]) >= float(rows["float32"][1]) - 1


def test_result_files_keep_the_kept_weights_and_mask_bits(tmp_path):
    """`qat.save` writes each matrix as its kept values and its mask as bits: `qat.load`
    gives back the same weights and masks as the older files that hold them whole."""
    old = qat.load(qat.SHIPPED, "charlm_gru2_t2s80g")      # shipped before the packed form
    qat.save(old, tmp_path)
    back = qat.load(tmp_path, old.tag)
    assert list(back.state_dict) == list(old.state_dict) and _same(back, old)
    assert all(torch.equal(m, back.masks[n]) for n, m in old.masks.items())
    assert "kept" not in torch.load(qat.SHIPPED / f"{old.tag}.pt", weights_only=True)
    size = (tmp_path / f"{old.tag}.pt").stat().st_size
    assert size < 0.35 * (qat.SHIPPED / f"{old.tag}.pt").stat().st_size
    n = "weight_hh_l1"
    old.masks[n].view(-1)[int(torch.nonzero(~old.masks[n].flatten())[0])] = True
    qat.save(old, tmp_path)                                  # a kept zero is a kept weight
    again = qat.load(tmp_path, old.tag)
    assert torch.equal(again.masks[n], old.masks[n]) and _same(again, old)


def test_the_large_char_lm_is_within_005_bits_of_its_float_model_at_80_percent(capsys,
                                                                            tmp_path):
    """charlm_gru128's shipped 2-level result: loaded, not trained, exactly 80 % of its
    matrix weights pruned over the model, within 0.05 bits per character of float."""
    r = qat.load(qat.SHIPPED, BIG_LM)
    assert "kept" in torch.load(qat.SHIPPED / f"{BIG_LM}.pt", weights_only=True)
    assert (r.levels, r.sparsity, r.scope, r.distill, r.lr, r.epochs, r.seed, r.threads) == \
        (2, 0.8, "model", 0.0, BIG_LM_LR, 30, 0, 1)
    total = sum(m.numel() for m in r.masks.values())
    assert total - sum(int(m.sum()) for m in r.masks.values()) >= 0.8 * total
    assert all(not bool(r.state_dict[f"rnn.{n}"][~m].any()) for n, m in r.masks.items())
    assert main(["ternary", "charlm_gru128", "--levels", "2", "--sparsity", "0.8",
                 "--global-pruning", "--lr", f"{BIG_LM_LR:g}", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "training" not in out and not any(tmp_path.iterdir())
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    label = BIG_LM[len("charlm_gru128_"):]
    assert rows["float32"][1] == BIG_LM_BPC[0] and rows[label][1] == BIG_LM_BPC[1]
    assert float(rows[label][1]) <= float(rows["float32"][1]) + 0.05
    assert rows[label][4] == "53/87"        # pruned % of l0.wx / l0.wh


def test_sru_fine_tunes_its_levels_on_the_ir_rows():
    """SRU keeps a layer's matrix as (I, k H), its columns interleaved per unit; fine-tuning
    fits the levels on the IR's rows (u, f, r[, hw]) and layer 1 (I == H) keeps its identity
    highway as fixed rows. No recurrent matrix, so no recurrent levels. A tiny run beats
    post-training ternarization through the integer reference."""
    from hwgen.models import load_model
    sru = flow.load_task("digits_sru")
    model, _ = load_model("digits_sru")
    params = dict(model.rnn.named_parameters())
    pairs = qat.trained_matrices(model, sru.ir)
    for layer, (tx, th) in zip(sru.ir.layers, pairs):
        assert th is None
        w = params[tx.name]
        rows = tx.rows(w).detach().numpy()
        assert np.array_equal(rows, layer.w_ih[:len(rows)])   # the importer's rows
        assert torch.equal(tx.unrows(tx.rows(w)), w)
        fixed = layer.w_ih[len(rows):]
        assert (tx.fixed is None and not len(fixed)) or np.array_equal(tx.fixed, fixed)
    assert pairs[1][0].fixed is not None   # 32 inputs, 32 units: the identity highway
    ptt = qat.int_metric(sru, qat.post_training(sru, 2, 0.8).qm)
    result = qat.train(sru, 2, 0.8, epochs=2, max_batches=8, lr=1e-2)
    tm = qat.to_ternary(sru, result)
    assert set(tm.pruned) == {"l0.wx", "l1.wx"}
    assert tm.pruned["l0.wx"] == round(0.8 * 512) / 512
    assert qat.int_metric(sru, tm.qm) > ptt + 10


@pytest.mark.parametrize("argv,message", [
    (["--binary", "--sparsity", "0.5"], "binary levels cannot hold a zero: use --sparsity 0"),
    (["--levels", "5"], "argument --levels: expected an integer in 1..4, not '5'"),
    (["--levels", "0"], "argument --levels: expected an integer in 1..4, not '0'"),
    (["--sparsity", "1"], "argument --sparsity: expected a probability in [0, 1), not '1'"),
    (["nosuch"], None),
    (["wordlm_gru"], "wordlm_gru: ternary fine-tuning of a model with an nn.Embedding is "
                     "not supported yet"),
    (["--global-pruning", "--sparsity", "0"], "--global-pruning needs a sparsity above 0"),
    (["--plot", "fig.txt"], "figure path must end in .png: fig.txt"),
    (["--distill", "1"], "argument --distill: expected a probability in [0, 1), not '1'"),
    (["--distill", "x"], "argument --distill: expected a finite number >= 0, not 'x'"),
    (["--distill", "0.5", "--temperature", "0"], "temperature must be a finite number above 0, not 0.0"),
    (["--distill", "0.5", "--temperature", "inf"], "temperature must be a finite number above 0, "
                                                   "not inf"),
    (["--temperature", "4"], "--temperature needs --distill above 0"),
    (["--lr", "0"], "learning rate must be a finite number above 0, not 0.0"),
    (["--head-sparsity", "0.5"], "a head sparsity is for a head with levels (--head)"),
    (["--head", "--binary", "--sparsity", "0", "--head-sparsity", "0.5"],
     "binary levels cannot hold a zero: no head sparsity"),
    (["--head", "--head-sparsity", "1"],
     "argument --head-sparsity: expected a probability in [0, 1), not '1'"),
])
def test_cli_errors(capsys, tmp_path, argv, message):
    code = main(["ternary", *argv, "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR and err.startswith("hwgen: error: ") and err.count("\n") == 1
    if message:
        assert err == f"hwgen: error: {message}\n"
    assert "training" not in out and not any(tmp_path.iterdir())
