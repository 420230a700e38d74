"""Your own model from the command line: torch.save / TorchScript / package.module:attr files
with .npz data become a Task; what hwgen cannot lower, or cannot read, is one error line."""
import re
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hwgen import flow
from hwgen.cli import EXIT_ERROR, EXIT_OK, main
from hwgen.ref import run_float

from conftest import make_model

SUPPORTED = "nn.LSTM, nn.GRU, hwgen.nn.LiGRU, hwgen.nn.SRU"
LOWERS = f"hwgen lowers one recurrent module ({SUPPORTED}) and one nn.Linear head"


class Net(nn.Module):
    """A user's model: time-major GRU, dropout, a head on the last step."""

    def __init__(self, rnn=None, every=False):
        super().__init__()
        self.rnn = rnn or nn.GRU(4, 6)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(self.rnn.hidden_size * (1 + self.rnn.bidirectional), 3)
        self.every = every

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(self.drop(y if self.every else y[-1]))


class Relu(Net):
    def forward(self, x):
        return self.fc(torch.relu(self.rnn(x)[0][-1]))


class WithEmbedding(Net):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 6)

    def forward(self, x):
        return self.rnn(x)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    """A saved time-major model and its data: (T=7, N=12, I=4) calibration, 9 test seqs."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.normal(size=(7, 12, 4)).astype(np.float32))
    np.savez(tmp_path / "test.npz", x=rng.normal(size=(7, 9, 4)), y=rng.integers(0, 3, 9))
    torch.save(Net().eval(), tmp_path / "net.pt")
    return tmp_path


def torch_out(model, x):
    with torch.no_grad():
        return model.eval()(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


@pytest.mark.parametrize("save", ["whole", "script", "trace"])
def test_torch_files_import(files, save):
    model = torch.load(files / "net.pt", weights_only=False)
    path = files / f"{save}.pt"
    if save == "whole":
        torch.save(model, path)
    else:
        getattr(torch.jit, save)(model, *(() if save == "script" else
                                          (torch.zeros(5, 2, 4),))).save(str(path))
    task = flow.load_task(str(path), calib=str(files / "calib.npz"))
    x = np.load(files / "calib.npz")["x"]
    assert (task.name, task.ir.head_mode, task.meta["layout"]) == (save, "last", "TNI")
    assert task.x_calib.shape == (12, 7, 4)             # tasks are batch-major
    np.testing.assert_allclose(run_float(task.ir, x, layout="TNI"), torch_out(model, x),
                               atol=1e-5)
    assert task.metric_name == "agree %"
    assert task.metric(run_float(task.ir, task.x_test, layout="NTI")) == 100


def test_test_file_labels_and_every_step_head(files):
    torch.save(Net(every=True).eval(), files / "every.pt")
    task = flow.load_task(str(files / "every.pt"), calib=str(files / "calib.npz"))
    assert task.ir.head_mode == "every" and task.y_test.shape == (12, 7)
    task = flow.load_task(str(files / "net.pt"), calib=str(files / "calib.npz"),
                          test=str(files / "test.npz"))
    assert task.metric_name == "accuracy %" and task.x_test.shape == (9, 7, 4)


def test_recurrent_classifier_keeps_its_head(tmp_path):
    torch.save(make_model("lstm", input_size=4, head_mode="every"), tmp_path / "rc.pt")
    np.savez(tmp_path / "c.npz", np.zeros((3, 5, 4)))          # the only array, unnamed
    task = flow.load_task(str(tmp_path / "rc.pt"), calib=str(tmp_path / "c.npz"))
    assert (task.ir.head_mode, task.ir.cell, task.meta["layout"]) == ("every", "lstm", "NTI")


def test_import_path_module_or_factory(files, monkeypatch):
    pkg = files / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(
        "import torch\nfrom torch import nn\n"
        "def build():\n    torch.manual_seed(1)\n"
        "    return nn.Sequential(nn.LSTM(4, 5), nn.Linear(5, 2))\n"
        "NET = build()\n")
    monkeypatch.chdir(files)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for spec in ("mypkg.models:build", "mypkg.models:NET"):
        # nn.Sequential cannot run an LSTM's tuple output: --head settles the head
        task = flow.load_task(spec, calib="calib.npz", head="last", layout="TNI")
        assert (task.name, task.ir.cell, task.ir.head_mode) == (spec.split(":")[1], "lstm", "last")


def test_cli_generate_then_nothing_else(files, capsys):
    code, out, err = run(capsys, "generate", files / "net.pt", "--calib", files / "calib.npz",
                         "--test", files / "test.npz", "--lanes", "2", "--out", files / "o")
    assert (code, err) == (EXIT_OK, "")
    assert (files / "o" / "net_p2" / "manifest.json").exists()
    assert np.load(files / "o" / "net_p2" / "vectors.npz")["inputs"].shape[0] == 9


def error_cases(d):
    """(argv, the one error line) for bad models and data; `d` is the folder of `files`."""
    torch.save(Net(nn.RNN(4, 6)).eval(), d / "rnn.pt")
    torch.save(Net(nn.LSTM(4, 6, bidirectional=True)).eval(), d / "bi.pt")
    torch.save(WithEmbedding().eval(), d / "emb.pt")
    torch.save(Relu().eval(), d / "relu.pt")
    torch.save(Pair().eval(), d / "pair.pt")
    torch.save(Net().state_dict(), d / "sd.pt")
    (d / "bad.pt").write_bytes(b"not a model" * 10)
    (d / "bad.npz").write_bytes(b"not an npz" * 10)
    np.savez(d / "ab.npz", a=np.zeros(3), b=np.zeros(3))
    np.savez(d / "wide.npz", x=np.zeros((7, 12, 5)))
    np.savez(d / "nolabels.npz", x=np.zeros((7, 2, 4)))
    np.savez(d / "badlabels.npz", x=np.zeros((7, 2, 4)), y=np.array([0, 3]))
    net, c = d / "net.pt", d / "calib.npz"
    return [
        ([d / "rnn.pt", "--calib", c], f"layer 'rnn' (nn.RNN): not a supported recurrent "
                                       f"cell; supported: {SUPPORTED}"),
        ([d / "bi.pt", "--calib", c], "layer 'rnn' (nn.LSTM): bidirectional LSTM is not "
                                      "supported"),
        ([d / "emb.pt", "--calib", c], "layer 'emb' (nn.Embedding): comes after 'rnn'; hwgen "
                                       "lowers an nn.Embedding only in front of the recurrent "
                                       "module"),
        ([d / "relu.pt", "--calib", c], re.compile(
            r"the model is not GRU -> nn.Linear: its forward and the import differ by up to "
            r"[0-9.e-]+ on --calib .*calib.npz; hwgen lowers a recurrent module whose output "
            r"feeds the nn.Linear head directly")),
        ([d / "pair.pt", "--calib", c], "layer 'rnn': no nn.Linear head follows it; hwgen "
                                        "lowers a recurrent module with an nn.Linear head"),
        ([d / "sd.pt", "--calib", c], f"model {d / 'sd.pt'}: holds a OrderedDict, not a torch "
                                      f"module (a state_dict: save the whole module, or use "
                                      f"package.module:attr)"),
        ([d / "bad.pt", "--calib", c], f"model {d / 'bad.pt'}: cannot load it with torch.load "
                                       f"or torch.jit.load (invalid load key, 'n'.)"),
        ([d / "none.pt", "--calib", c], f"model {d / 'none.pt'}: no such file"),
        (["no_such_model"], "Unknown model 'no_such_model': not a bundled model (charlm_gru128, "
                            "charlm_gru2, charlm_lstm, digits_gru, digits_ligru, digits_lstm, "
                            "digits_sru, speech_gru, speech_gru256, speech_ligru, speech_lstm, "
                            "speech_sru, wordlm_gru), an existing file or package.module:attr"),
        (["nopkg_xyz.mod:net", "--calib", c],
         "model nopkg_xyz.mod:net: cannot import 'nopkg_xyz.mod' (ModuleNotFoundError: No "
         "module named 'nopkg_xyz')"),
        ([net], f"model '{net}' is not bundled: give its calibration inputs with --calib "
                f"FILE.npz (sequences in the model's own layout)"),
        (["digits_lstm", "--calib", c], "--calib: for your own model; 'digits_lstm' is bundled "
                                        "and brings its own data"),
        ([net, "--calib", d / "none.npz"], f"--calib {d / 'none.npz'}: no such file"),
        ([net, "--calib", d / "bad.npz"], f"--calib {d / 'bad.npz'}: not a readable .npz file"),
        ([net, "--calib", d / "ab.npz"], f"--calib {d / 'ab.npz'}: no array 'x' (arrays: a, b)"),
        ([net, "--calib", d / "wide.npz"], f"--calib {d / 'wide.npz'}: array 'x' is float64 "
                                           f"(7, 12, 5); the model takes (T, N, 4) numbers "
                                           f"(layout TNI)"),
        ([net, "--calib", c, "--test", d / "nolabels.npz"],
         f"--test {d / 'nolabels.npz'}: no array 'y' (arrays: x)"),
        ([net, "--calib", c, "--test", d / "badlabels.npz"],
         f"--test {d / 'badlabels.npz'}: labels 'y' must be integers in 0..2 of shape (2,) "
         f"(head on last step), not int64 (2,)"),
    ]


def test_errors_are_one_line_and_write_nothing(files, capsys):
    for argv, message in error_cases(files):
        out_dir = files / "out"
        code, out, err = run(capsys, "generate", *argv, "--out", out_dir)
        line = err.removeprefix("hwgen: error: ").removesuffix("\n")
        assert code == EXIT_ERROR and err.count("\n") == 1, (argv, err)
        assert (re.fullmatch(message, line) if isinstance(message, re.Pattern)
                else line == message), (line, message)
        assert "Traceback" not in out and not out_dir.exists()


def test_quantize_and_delta_take_user_models(files, capsys):
    argv = [files / "net.pt", "--calib", files / "calib.npz", "--test", files / "test.npz"]
    code, out, _ = run(capsys, "quantize", *argv, "--bits", "8")
    assert code == EXIT_OK and "net: GRU I=4 H=6 layers=1 O=3 head=last" in out
    code, out, _ = run(capsys, "delta", *argv)
    assert code == EXIT_OK and "chosen within 1.0 of dense" in out
