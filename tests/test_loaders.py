"""Real-format loaders (IMDb, Penn TreeBank, Kaldi text ark, .npy/.npz) on small files the
tests write, their named errors, and `hwgen quantize/generate/delta --data --format`."""
import re

import numpy as np
import pytest
import torch
from torch import nn

from hwgen import flow, loaders, usermodel
from hwgen.cli import EXIT_ERROR, EXIT_OK
from hwgen.loaders import DataFormatError

from conftest import make_model
from test_cli import assert_error, run


class TimeMajor(nn.Module):
    """A user's model: time-major GRU, head on the last step (or every step)."""

    def __init__(self, inputs=4, outputs=3, every=False):
        super().__init__()
        self.rnn = nn.GRU(inputs, 6)
        self.fc = nn.Linear(6, outputs)
        self.every = every

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y if self.every else y[-1])


class WithEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.rnn = nn.GRU(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.rnn(self.emb(x))[0][:, -1])


def table_metric(out: str, scheme: str = "float32") -> float:
    """The metric column of a `hwgen quantize` table row."""
    row = next(line for line in out.splitlines() if line.startswith(scheme))
    return float(row.split()[3])


# ---------------------------------------------------------------- writers (the formats)

def write_imdb(root, splits):
    """splits: {"train": {"neg": [text, ...], "pos": [...]}, "test": {...}}; files are
    named <i>_<rating>.txt as in aclImdb."""
    for split, classes in splits.items():
        for name, texts in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, text in enumerate(texts):
                (folder / f"{i}_{8 if name == 'pos' else 2}.txt").write_text(text)
    (root / "train" / "unsup").mkdir()                     # ignored, as in aclImdb
    (root / "train" / "labeledBow.feat").write_text("0 9:1\n")
    return root


def write_ark(path, mats):
    """Kaldi's text writer: ``utt  [`` then rows "  v v v " and " ]" after the last."""
    with open(path, "w") as f:
        for utt, m in mats.items():
            f.write(f"{utt}  [\n")
            for i, row in enumerate(m):
                end = " ]\n" if i == len(m) - 1 else " \n"
                f.write("  " + " ".join(repr(float(v)) for v in row) + end)
    return path


def write_labels(path, labels):
    path.write_text("".join(f"{u} {int(v)}\n" for u, v in labels.items()))
    return path


IMDB = {
    "train": {"neg": ["Bad bad film.<br /><br />Boring!", "A BAD plot, don't watch"],
              "pos": ["Good film; good cast.", "a great, good 'film'"]},
    "test": {"neg": ["bad acting", "awful film"],
             "pos": ["good good good good good good", "great"]},
}

PTB_TRAIN = " the cat sat \n the dog <unk> \n"
PTB_TEST = " the bird sat \n"


@pytest.fixture
def speech(tmp_path):
    """12 utterances of 3..8 frames x 4 features, labels, and a time-major GRU model."""
    rng = np.random.default_rng(0)
    mats = {f"spk{i // 4}_{i % 4:02d}": rng.normal(size=(int(rng.integers(3, 9)), 4))
            for i in range(12)}
    write_ark(tmp_path / "feats.ark", mats)
    torch.manual_seed(0)
    torch.save(TimeMajor().eval(), tmp_path / "my.pt")
    return tmp_path, mats


# ---------------------------------------------------------------- IMDb

def test_tokenize_rule():
    assert loaders.tokenize("Don't<br />STOP!! It's 10/10 - 'great' Café’s x2y") == \
        ["don't", "stop", "it's", "great", "café's", "x", "y"]


def test_imdb_vocab_ids_labels_padding(tmp_path):
    root = write_imdb(tmp_path / "aclImdb", IMDB)
    train = loaders.load_imdb(root, "train")
    # <pad> 0, <unk> 1, then the train words by count (bad, film, good 3; a 2 ...), ties a-z
    assert train.vocab.tokens == ["<pad>", "<unk>", "bad", "film", "good", "a", "boring",
                                  "cast", "don't", "great", "plot", "watch"]
    assert (train.vocab.pad, train.vocab.oov) == (0, 1)
    assert train.y.tolist() == [0, 0, 1, 1]
    assert train.names == ["train/neg/0_2.txt", "train/neg/1_2.txt", "train/pos/0_8.txt",
                           "train/pos/1_8.txt"]
    assert train.x.dtype == np.int64 and train.x.shape == (4, 5) and train.layout == "NT"
    assert train.x.tolist() == [[0, 2, 2, 3, 6],              # padded at the front
                                [5, 2, 10, 8, 11],
                                [0, 4, 3, 4, 7],
                                [0, 5, 9, 4, 3]]
    assert train.lengths.tolist() == [4, 5, 4, 4]
    test = loaders.load_imdb(root, "test", vocab=train.vocab, max_len=3)
    assert train.vocab.decode(test.x[0]) == ["<pad>", "bad", "<unk>"]   # acting: OOV
    assert test.x.tolist() == [[0, 2, 1], [0, 1, 3], [4, 4, 4], [0, 0, 9]]  # last 3 kept
    assert test.lengths.tolist() == [2, 2, 3, 1] and test.target == "sequence"
    # the vocabulary is built from train, not test: the same without passing it
    assert loaders.load_imdb(root, "test", max_len=3).x.tolist() == test.x.tolist()
    small = loaders.load_imdb(root, "train", max_vocab=4)
    assert small.vocab.tokens == ["<pad>", "<unk>", "bad", "film"]
    assert small.x[2].tolist() == [0, 1, 3, 1, 1]


def test_imdb_files_in_numeric_order(tmp_path):
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for name in ("neg", "pos"):
            (root / split / name).mkdir(parents=True)
            for i in (10, 9, 100):
                (root / split / name / f"{i}_1.txt").write_text(f"w{'a' * (i % 7)}")
    assert loaders.load_imdb(root).names[:3] == [
        "train/neg/9_1.txt", "train/neg/10_1.txt", "train/neg/100_1.txt"]


# ---------------------------------------------------------------- Penn TreeBank

def test_ptb_eos_unk_and_next_token_targets(tmp_path):
    for split, text in (("train", PTB_TRAIN), ("valid", " the cat \n"), ("test", PTB_TEST)):
        (tmp_path / f"ptb.{split}.txt").write_text(text)
    train = loaders.load_ptb(tmp_path, "train", seq_len=3)
    # <unk> 0 (also the OOV id), <eos> 1, then the words by train count, ties a-z
    assert train.vocab.tokens == ["<unk>", "<eos>", "the", "cat", "dog", "sat"]
    assert loaders.ptb_words(tmp_path / "ptb.train.txt") == \
        ["the", "cat", "sat", "<eos>", "the", "dog", "<unk>", "<eos>"]
    assert train.x.tolist() == [[2, 3, 5], [1, 2, 4]]          # 8 tokens -> 2 x 3, tail cut
    assert train.y.tolist() == [[3, 5, 1], [2, 4, 0]]
    assert train.target == "step" and train.lengths is None
    test = loaders.load_ptb(tmp_path, "test", seq_len=2, vocab=train.vocab)
    assert test.x.tolist() == [[2, 0]] and test.y.tolist() == [[0, 5]]   # bird: <unk>
    valid = loaders.load_ptb(tmp_path, "valid", seq_len=1)      # vocabulary from train
    assert valid.x.tolist() == [[2], [3]] and valid.y.tolist() == [[3], [1]]
    assert loaders.load_ptb(tmp_path, "train", seq_len=3, max_vocab=3).vocab.tokens == \
        ["<unk>", "<eos>", "the"]


# ---------------------------------------------------------------- Kaldi ark and labels

def test_ark_matrices_equal_what_was_written(speech):
    d, mats = speech
    read = loaders.read_ark(d / "feats.ark")
    assert list(read) == list(mats)
    for utt, m in mats.items():
        assert np.array_equal(read[utt], m)
    labels = write_labels(d / "labels.txt", {u: i % 3 for i, u in enumerate(reversed(mats))})
    data = loaders.load_kaldi(d / "feats.ark", labels)
    lengths = [len(m) for m in mats.values()]
    assert data.x.shape == (12, max(lengths), 4) and data.features == 4
    assert data.lengths.tolist() == lengths and data.names == list(mats)
    for i, m in enumerate(mats.values()):                      # zero frames in front
        assert np.array_equal(data.x[i, data.steps - len(m):], m)
        assert not data.x[i, :data.steps - len(m)].any()
    assert data.y.tolist() == [(11 - i) % 3 for i in range(12)]
    cut = loaders.load_kaldi(d / "feats.ark", max_len=3)
    assert cut.y is None and cut.x.shape == (12, 3, 4)
    assert np.array_equal(cut.x[0], mats["spk0_00"][-3:])       # the last frames kept


def test_ark_variants(tmp_path):
    (tmp_path / "a.ark").write_text("u1 [ 1 2 ]\n\nu2  [\n 3 4\n 5 6]\nu3 [\n 7 8\n ]\n")
    read = loaders.read_ark(tmp_path / "a.ark")
    assert {k: v.tolist() for k, v in read.items()} == {
        "u1": [[1, 2]], "u2": [[3, 4], [5, 6]], "u3": [[7, 8]]}


# ---------------------------------------------------------------- .npy / .npz

def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 7, 3)).astype(np.float32)
    y = rng.integers(0, 4, size=(5, 7))
    np.savez(tmp_path / "nti.npz", x=x, y=y)
    np.savez(tmp_path / "tni.npz", x=x.swapaxes(0, 1), y=y.T)
    np.savez(tmp_path / "lone.npz", feats=x)
    np.save(tmp_path / "x.npy", x)
    for name, layout in (("nti.npz", "NTI"), ("tni.npz", "TNI")):
        data = loaders.load_npz(tmp_path / name, layout)
        assert np.array_equal(data.x, x) and data.x.dtype == np.float64
        assert np.array_equal(data.y, y) and data.target == "step"
    assert loaders.load_npz(tmp_path / "nti.npz", labels=False).y is None
    for name in ("lone.npz", "x.npy"):
        data = loaders.load_npz(tmp_path / name)
        assert np.array_equal(data.x, x) and data.y is None and data.layout == "NTI"


# ---------------------------------------------------------------- named errors

def error_cases(d):
    """(a call that must fail, its message), over files written in `d`."""
    acl = write_imdb(d / "aclImdb", IMDB)
    (d / "half" / "train" / "pos").mkdir(parents=True)
    (d / "bare" / "train" / "neg").mkdir(parents=True)
    (d / "bare" / "train" / "pos").mkdir(parents=True)
    (acl / "test" / "pos" / "9_9.txt").write_text("  \n")
    blank = acl / "test" / "pos" / "9_9.txt"
    noword = d / "noword"
    write_imdb(noword, {"train": {"neg": ["ok"], "pos": ["12 / 10 !!"]}})
    latin = d / "latin"
    write_imdb(latin, {"train": {"neg": ["ok"], "pos": ["ok"]}})
    (latin / "train" / "pos" / "0_8.txt").write_bytes(b"fine\nbad \xff byte")
    (d / "ptb").mkdir()
    (d / "ptb" / "ptb.train.txt").write_text("\n \n")
    (d / "ptb" / "ptb.test.txt").write_text("a b\n")
    (d / "ptb2").mkdir()
    (d / "ptb2" / "ptb.train.txt").write_text(PTB_TRAIN)
    (d / "ptb2" / "ptb.test.txt").write_text("a b\n")
    rows = "".join("  " + " ".join(["0.5"] * (39 if i == 5 else 40)) + "\n" for i in range(8))
    (d / "feats.ark").write_text("spk1_01  [\n" + rows[:-1] + " ]\n")    # line 7: 39 values
    ark = {
        "empty.ark": "", "blank.ark": "\n  \n",
        "word.ark": "u1  [\n  1.0 abc\n ]\n",
        "nohead.ark": "1 2 3\n",
        "open.ark": "u1  [\n  1 2\n  3 4\n",
        "norows.ark": "u1 [ ]\n",
        "twice.ark": "u1  [\n  1 2 ]\nu1  [\n  3 4 ]\n",
        "nan.ark": "u1  [\n  1 nan ]\n",
    }
    for name, text in ark.items():
        (d / name).write_text(text)
    (d / "bin.ark").write_bytes(b"u1 \0BFM \x04\x03\x00\x00\x00")
    write_ark(d / "ok.ark", {"spk1_02": np.ones((2, 3)), "spk1_03": np.zeros((1, 3))})
    labels = {"labels.txt": "spk1_02 1\n", "three.txt": "spk1_02 1 2\n",
              "word.txt": "spk1_02 yes\n", "twice.txt": "spk1_02 1\nspk1_02 0\n",
              "nolabels.txt": "\n"}
    for name, text in labels.items():
        (d / name).write_text(text)
    (d / "bad.npz").write_bytes(b"not an npz" * 9)
    np.savez(d / "ab.npz", a=np.zeros(3), b=np.zeros(3))
    np.savez(d / "flat.npz", x=np.zeros((4, 5)))
    np.savez(d / "inf.npz", x=np.full((2, 3, 1), np.inf))
    np.savez(d / "yshape.npz", x=np.zeros((2, 3, 1)), y=np.zeros(2, dtype=int))
    np.savez(d / "yfloat.npz", x=np.zeros((2, 3, 1)), y=np.zeros(2))
    imdb, ptb, kaldi, npz = (loaders.load_imdb, loaders.load_ptb, loaders.load_kaldi,
                             loaders.load_npz)
    return [
        (lambda: imdb(d / "none"), f"{d / 'none'}: no such directory"),
        (lambda: imdb(d / "half"), f"{d / 'half/train/neg'}: no such directory (an IMDb "
                                   f"folder holds {{train,test}}/{{neg,pos}}/*.txt)"),
        (lambda: imdb(d / "bare"), f"{d / 'bare/train/neg'} has no .txt files"),
        (lambda: imdb(acl, "test"), f"{blank} is empty"),
        (lambda: imdb(noword), f"{noword / 'train/pos/0_8.txt'} has no words (tokens are "
                               f"runs of letters)"),
        (lambda: imdb(latin), f"{latin / 'train/pos/0_8.txt'} line 2: not UTF-8 text"),
        (lambda: ptb(d / "none"), f"{d / 'none'}: no such directory"),
        (lambda: ptb(d / "ptb2", "valid"), f"{d / 'ptb2/ptb.valid.txt'}: no such file"),
        (lambda: ptb(d / "ptb"), f"{d / 'ptb/ptb.train.txt'} is empty"),
        (lambda: ptb(d / "ptb2"), f"{d / 'ptb2/ptb.test.txt'}: 3 tokens with <eos>, too few "
                                  f"for one sequence of 35 with next-token targets"),
        (lambda: kaldi(d / "feats.ark"), f"{d / 'feats.ark'} line 7: row has 39 values, "
                                         f"expected 40"),
        (lambda: kaldi(d / "none.ark"), f"{d / 'none.ark'}: no such file"),
        (lambda: kaldi(d / "empty.ark"), f"{d / 'empty.ark'} is empty"),
        (lambda: kaldi(d / "blank.ark"), f"{d / 'blank.ark'} is empty"),
        (lambda: kaldi(d / "word.ark"), f"{d / 'word.ark'} line 2: 'abc' is not a number "
                                        f"(utterance u1)"),
        (lambda: kaldi(d / "nohead.ark"), f"{d / 'nohead.ark'} line 1: expected 'utt-id [' "
                                          f"to start a matrix, got '1 2 3'"),
        (lambda: kaldi(d / "open.ark"), f"{d / 'open.ark'} line 1: utterance u1 has no "
                                        f"closing ']'"),
        (lambda: kaldi(d / "norows.ark"), f"{d / 'norows.ark'} line 1: utterance u1 has no "
                                          f"rows"),
        (lambda: kaldi(d / "twice.ark"), f"{d / 'twice.ark'} line 3: utterance u1 appears "
                                         f"twice"),
        (lambda: kaldi(d / "nan.ark"), f"{d / 'nan.ark'} line 2: NaN or infinite value "
                                       f"(utterance u1)"),
        (lambda: kaldi(d / "bin.ark"), f"{d / 'bin.ark'} is a binary Kaldi archive; write it "
                                       f"as text (copy-feats ark:bin.ark ark,t:bin.txt.ark)"),
        (lambda: kaldi(d / "ok.ark", d / "labels.txt"),
         f"utterance spk1_03 of {d / 'ok.ark'} has no label in {d / 'labels.txt'}"),
        (lambda: kaldi(d / "ok.ark", d / "none.txt"), f"{d / 'none.txt'}: no such file"),
        (lambda: kaldi(d / "ok.ark", d / "three.txt"),
         f"{d / 'three.txt'} line 1: expected 'utt-id label', got 'spk1_02 1 2'"),
        (lambda: kaldi(d / "ok.ark", d / "word.txt"),
         f"{d / 'word.txt'} line 1: label 'yes' of spk1_02 is not a class number (an "
         f"integer >= 0)"),
        (lambda: kaldi(d / "ok.ark", d / "twice.txt"),
         f"{d / 'twice.txt'} line 2: utterance spk1_02 is labelled twice"),
        (lambda: kaldi(d / "ok.ark", d / "nolabels.txt"), f"{d / 'nolabels.txt'} is empty"),
        (lambda: npz(d / "none.npz"), f"{d / 'none.npz'}: no such file"),
        (lambda: npz(d / "bad.npz"), f"{d / 'bad.npz'}: not a readable .npy or .npz file"),
        (lambda: npz(d / "ab.npz"), f"{d / 'ab.npz'}: no array 'x' (arrays: a, b)"),
        (lambda: npz(d / "flat.npz"), f"{d / 'flat.npz'}: array 'x' is float64 (4, 5); "
                                      f"expected numbers (N, T, features) (layout NTI)"),
        (lambda: npz(d / "inf.npz"), f"{d / 'inf.npz'}: array 'x' holds NaN or infinite "
                                     f"values"),
        (lambda: npz(d / "yshape.npz", "TNI"),
         f"{d / 'yshape.npz'}: array 'y' is int64 (2,); expected integer labels >= 0 of "
         f"shape (3,), one per sequence, or (2, 3), one per step (layout TNI)"),
        (lambda: npz(d / "yfloat.npz"),
         f"{d / 'yfloat.npz'}: array 'y' is float64 (2,); expected integer labels >= 0 of "
         f"shape (2,), one per sequence, or (2, 3), one per step (layout NTI)"),
    ]


def test_named_errors(tmp_path):
    for call, message in error_cases(tmp_path):
        with pytest.raises(DataFormatError) as info:
            call()
        assert str(info.value) == message


# ---------------------------------------------------------------- the command line

@pytest.mark.parametrize("save", ["whole", "trace"])
def test_cli_kaldi_quantize_uses_the_labels(speech, capsys, save):
    d, mats = speech
    model = torch.load(d / "my.pt", weights_only=False)
    if save == "trace":    # a traced module does not record batch_first: found by the forward
        torch.jit.trace(model, torch.zeros(5, 2, 4)).save(str(d / "my_trace.pt"))
    pt = d / ("my.pt" if save == "whole" else "my_trace.pt")
    data = loaders.load_kaldi(d / "feats.ark")
    with torch.no_grad():       # the float model's classes; 3 of 12 labels then disagree
        pred = model(torch.as_tensor(data.x.swapaxes(0, 1), dtype=torch.float32)).argmax(1)
    labels = {u: (p + (i >= 9)) % 3 for i, (u, p) in enumerate(zip(mats, pred.tolist()))}
    write_labels(d / "labels.txt", labels)
    code, out, err = run(capsys, "quantize", pt, "--data", d / "feats.ark", "--format",
                         "kaldi", "--labels", d / "labels.txt", "--bits", "8")
    assert (code, err) == (EXIT_OK, "")
    assert f"{pt.stem}: GRU I=4 H=6 layers=1 O=3 head=last" in out
    assert "accuracy %" in out and table_metric(out) == 75.0
    code, out, _ = run(capsys, "quantize", pt, "--data", d / "feats.ark", "--format", "kaldi",
                       "--bits", "8")                           # no labels: agreement
    assert code == EXIT_OK and "agree %" in out and table_metric(out) == 100.0


def test_cli_kaldi_generate_and_delta(speech, capsys):
    d, mats = speech
    write_labels(d / "labels.txt", {u: i % 3 for i, u in enumerate(mats)})
    argv = [d / "my.pt", "--data", d / "feats.ark", "--format", "kaldi", "--labels",
            d / "labels.txt", "--seq-len", "6", "--limit", "10"]
    code, out, err = run(capsys, "generate", *argv, "--lanes", "2", "--out", d / "o")
    assert (code, err) == (EXIT_OK, "") and (d / "o" / "my_p2" / "manifest.json").exists()
    assert np.load(d / "o" / "my_p2" / "vectors.npz")["inputs"].shape[:2] == (10, 6)
    code, out, err = run(capsys, "delta", *argv)
    assert (code, err) == (EXIT_OK, "") and "chosen within 1.0 of dense" in out


def test_load_task_with_data(speech):
    d, mats = speech
    train = write_ark(d / "train.ark", {f"t{i}": np.ones((2, 4)) * i for i in range(300)})
    task = flow.load_task(str(d / "my.pt"), data=str(d / "feats.ark"), format="kaldi",
                          calib=str(train), limit=5)
    assert task.x_calib.shape == (flow.CALIBRATION_SEQUENCES, 2, 4)     # evenly spread
    assert task.x_calib[-1, 0, 0] == 299 and task.x_test.shape[0] == 5
    assert (task.meta["format"], task.meta["layout"], task.metric_name) == \
        ("kaldi", "TNI", "agree %")


def test_cli_npz_in_the_models_layout(tmp_path, capsys):
    rng = np.random.default_rng(2)
    torch.manual_seed(0)
    model = TimeMajor().eval()
    torch.save(model, tmp_path / "tm.pt")
    x = rng.normal(size=(6, 20, 4))                             # time-major, as the model
    with torch.no_grad():
        pred = model(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy()
    y = pred.copy()
    y[:5] = (y[:5] + 1) % 3                                     # 15 of 20 right
    np.savez(tmp_path / "test.npz", x=x, y=y)
    np.savez(tmp_path / "calib.npz", x=x[:, :8])
    code, out, err = run(capsys, "quantize", tmp_path / "tm.pt", "--data",
                         tmp_path / "test.npz", "--format", "npz", "--calib",
                         tmp_path / "calib.npz", "--bits", "8")
    assert (code, err) == (EXIT_OK, "") and table_metric(out) == 75.0


def test_cli_ptb_one_hot_language_model(tmp_path, capsys):
    for split, text in (("train", PTB_TRAIN * 3), ("test", PTB_TEST * 4)):
        (tmp_path / f"ptb.{split}.txt").write_text(text)
    torch.save(make_model("gru", input_size=6, hidden=8, out=6, head_mode="every"),
               tmp_path / "lm.pt")
    code, out, err = run(capsys, "quantize", tmp_path / "lm.pt", "--data", tmp_path,
                         "--format", "ptb", "--seq-len", "5", "--bits", "8")
    assert (code, err) == (EXIT_OK, "") and "bits/word" in out
    test = loaders.load_ptb(tmp_path, "test", 5)
    with torch.no_grad():
        logits = torch.load(tmp_path / "lm.pt", weights_only=False)(
            torch.as_tensor(np.eye(6)[test.x], dtype=torch.float32))
    logp = torch.log_softmax(logits.double(), -1).numpy()
    bits = -np.take_along_axis(logp, test.y[..., None], -1).mean() / np.log(2)
    assert table_metric(out) == pytest.approx(bits, abs=1e-3)


def test_cli_imdb_one_hot_embedding_or_refused(tmp_path, capsys):
    root = write_imdb(tmp_path / "aclImdb", IMDB)
    torch.save(make_model("lstm", input_size=5, hidden=6, out=2), tmp_path / "oh.pt")
    code, out, err = run(capsys, "quantize", tmp_path / "oh.pt", "--data", root, "--format",
                         "imdb", "--vocab-size", "5", "--bits", "8")
    assert (code, err) == (EXIT_OK, "") and "accuracy %" in out
    torch.save(TimeMajor().eval(), tmp_path / "feat.pt")
    assert_error(capsys, ["quantize", tmp_path / "feat.pt", "--data", root, "--format",
                          "imdb"],
                 f"--data {root} (imdb) gives token ids; the model's first layer takes 4 "
                 f"features: an nn.Embedding front of 12 tokens is needed, or one-hot tokens: a "
                 f"first layer of 12 inputs, the vocabulary's size (--vocab-size sets it)")
    torch.manual_seed(0)
    torch.save(WithEmbedding().eval(), tmp_path / "emb.pt")
    assert_error(capsys, ["quantize", tmp_path / "emb.pt", "--data", root, "--format", "imdb"],
                 f"--data {root} (imdb) has a vocabulary of 12 tokens; the model's "
                 f"nn.Embedding takes 10 (--vocab-size sets it)")
    # token ids reach an embedding model as ids: the float row is the torch model's own
    code, out, err = run(capsys, "quantize", tmp_path / "emb.pt", "--data", root, "--format",
                         "imdb", "--vocab-size", "10", "--bits", "8")
    assert (code, err) == (EXIT_OK, "") and "accuracy %" in out
    train = loaders.load_imdb(root, "train", max_vocab=10)
    test = loaders.load_imdb(root, "test", vocab=train.vocab)
    with torch.no_grad():
        logits = torch.load(tmp_path / "emb.pt", weights_only=False)(torch.as_tensor(test.x))
    accuracy = 100 * np.mean(logits.argmax(-1).numpy() == test.y)
    assert table_metric(out) == pytest.approx(accuracy)


def test_cli_errors_are_one_line(speech, capsys, monkeypatch):
    d, mats = speech
    pt, ark = d / "my.pt", d / "feats.ark"
    write_labels(d / "labels.txt", {u: i % 3 for i, u in enumerate(mats)})
    write_labels(d / "four.txt", {u: 3 for u in mats})
    write_ark(d / "wide.ark", {"u": np.zeros((2, 5))})
    torch.save(TimeMajor(every=True).eval(), d / "every.pt")
    lab = ["--labels", d / "labels.txt"]
    cases = [
        ([pt, "--data", ark], f"--data {ark}: give its --format (imdb|ptb|kaldi|npz)"),
        ([pt, "--calib", d / "c.npz", "--format", "kaldi"],
         "--format goes with --data PATH (your data in one of the formats imdb, ptb, kaldi, "
         "npz)"),
        ([pt, "--data", ark, "--format", "npz", *lab], "--labels: not for --format npz (only "
                                                       "kaldi)"),
        ([pt, "--data", ark, "--format", "kaldi", "--vocab-size", "9"],
         "--vocab-size: not for --format kaldi (only imdb, ptb)"),
        ([pt, "--data", d, "--format", "ptb", "--calib", ark],
         "--calib: not for --format ptb (only kaldi, npz)"),
        ([pt, "--data", ark, "--format", "kaldi", "--test", d / "t.npz"],
         f"--test: --data {ark} is the test data; give one or the other"),
        (["digits_lstm", "--data", ark, "--format", "kaldi"],
         "--data: for your own model; 'digits_lstm' is bundled and brings its own data"),
        ([pt, "--data", d / "wide.ark", "--format", "kaldi"],
         f"--data {d / 'wide.ark'}: 5 features per step; the model's first layer takes 4"),
        ([pt, "--data", ark, "--format", "kaldi", "--labels", d / "none.txt"],
         f"{d / 'none.txt'}: no such file"),
        ([d / "every.pt", "--data", ark, "--format", "kaldi", *lab],
         f"--labels {d / 'labels.txt'} gives one label per sequence; the model's head reads "
         f"every step"),
        ([pt, "--data", ark, "--format", "kaldi", "--labels", d / "four.txt"],
         f"--labels {d / 'four.txt'}: label 3 is out of range: the model has 3 outputs "
         f"(0..2)"),
        ([pt, "--data", ark, "--format", "kaldi", "--vocab-size", "2"],
         "argument --vocab-size: expected an integer >= 3 (two special tokens and a word), "
         "not '2'"),
    ]
    for argv, message in cases:
        assert_error(capsys, ["quantize", *argv], message)
    monkeypatch.setattr(usermodel, "ONE_HOT_LIMIT", 10)
    (d / "ptb.train.txt").write_text(PTB_TRAIN)
    (d / "ptb.test.txt").write_text(PTB_TEST)
    torch.save(make_model("gru", input_size=6, out=6, head_mode="every"), d / "lm.pt")
    code, _, err = run(capsys, "quantize", d / "lm.pt", "--data", d, "--format", "ptb",
                       "--seq-len", "2")
    assert code == EXIT_ERROR and re.fullmatch(
        r"hwgen: error: --data .*: one-hot inputs of 3 x 2 x 6 values are too many \(limit "
        r"1e\+01\): give --limit, --seq-len or --vocab-size\n", err)


def test_explore_takes_the_data_task(speech):
    """`hwgen explore MODEL --data ... --format kaldi` sends the task built from the data to
    the workers (not the model's name); a bundled model with --data is refused by name."""
    from hwgen.cli import build_parser
    from hwgen.explore.command import _task_of
    d, mats = speech
    write_labels(d / "labels.txt", {u: i % 3 for i, u in enumerate(mats)})
    args = build_parser().parse_args(
        ["explore", str(d / "my.pt"), "--data", str(d / "feats.ark"), "--format", "kaldi",
         "--labels", str(d / "labels.txt")])
    task = _task_of(args)
    assert isinstance(task, flow.Task) and len(task.x_test) == len(mats)
    args = build_parser().parse_args(["explore", "digits_gru", "--data", str(d / "feats.ark"),
                                      "--format", "kaldi"])
    with pytest.raises(flow.FlowError, match="--data: for your own model; 'digits_gru' is "
                                             "bundled and brings its own data"):
        _task_of(args)
