"""Your own model from the command line: a model file or import path, with your data, as a
`hwgen.flow.Task` that every flow step takes like a bundled one.

A model is a ``torch.save``d whole module, a TorchScript file, an ONNX file (``.onnx``,
`hwgen.frontend_onnx`) or ``package.module:attr`` (a module, or a zero-argument function
returning one). A torch model is one recurrent module of a registered cell (`hwgen.cells`)
and one ``nn.Linear`` head; its forward is run on the calibration data to learn whether the
head reads the last step or every step and to check that the import computes what the
module does. Data are ``.npz`` files in the model's own layout (`hwgen.ir.data_layout`):
``--calib`` holds ``x`` (or one array), ``--test`` holds ``x`` and integer labels ``y``.
Without ``--test`` the metric is the argmax agreement with the float model on the
calibration inputs (the quantize table's rms column gives the output error beside it).
Or data in a real format, ``--data PATH --format imdb|ptb|kaldi|npz`` (`hwgen.loaders`,
`load_data_task`): the metric on it, calibrated on its train split or on itself.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
import re
import sys
import warnings
import zipfile

import numpy as np

from .flow import CALIBRATION_SEQUENCES, FlowError, Task, TASK_LAYOUT
from .frontend import (UnsupportedModelError, _import_head, _import_rnn, from_torch,
                       import_embedding)
from .ir import LAYOUTS, ModelIR, data_layout, shape_name, swap_layout
from .loaders import FORMATS
from .ref import run_float

CHECK_SEQUENCES = 8      # calibration sequences the torch forward is compared on
TOLERANCE = 1e-4         # float32 torch vs float64 IR, relative to the outputs' scale
USER_OPTIONS = ("calib", "test", "head", "layout")
DATA_OPTIONS = ("format", "labels", "vocab_size", "seq_len", "limit")   # with --data
FORMAT_OPTIONS = {"labels": ("kaldi",), "vocab_size": ("imdb", "ptb"),
                  "seq_len": ("imdb", "ptb", "kaldi"), "calib": ("kaldi", "npz")}
TOKEN_FORMATS = ("imdb", "ptb")
ONE_HOT_LIMIT = 100_000_000     # values of a one-hot input array (800 MB as float64)
SUPPORTED_CELLS = "nn.LSTM, nn.GRU, hwgen.nn.LiGRU, hwgen.nn.SRU"


class UserTask(Task):
    """A user's model and data; without labels, the metric is argmax agreement with the
    float model (`y_test` then holds the float model's argmax). Penn TreeBank data make a
    word-level language model: bits per word."""

    labelled: bool = True

    @property
    def kind(self) -> str:
        return "lm" if self.meta.get("format") == "ptb" else super().kind

    @property
    def metric_name(self) -> str:
        if self.kind == "lm":
            return "bits/word"
        return "accuracy %" if self.labelled else "agree %"


def load_user_task(spec: str, calib=None, test=None, head=None, layout=None, data=None,
                   format=None, labels=None, vocab_size=None, seq_len=None,
                   limit=None) -> Task:
    """The Task of a user's model `spec` with calibration (and test) data from .npz files,
    or with data in a real format (`data`, `format`; see `hwgen.loaders`).

    Parameters
    ----------
    spec : a model file (torch.save, TorchScript, .onnx) or ``package.module:attr``.
    calib : path of the calibration .npz (required without `data`); with `data` of format
        kaldi or npz, an optional calibration file in that format.
    test : optional path of an .npz with inputs ``x`` and integer labels ``y``.
    head : "last" or "every" to override (or settle) where the head reads.
    layout : "NTI" or "TNI" to override the layout of the model (and of its .npz files).
    data, format, labels, vocab_size, seq_len, limit : data in a real format; see
        `load_data_task`.

    Raises
    ------
    FlowError, UnsupportedModelError, hwgen.loaders.DataFormatError
        One-line messages naming the file, array, layer or feature.
    """
    if not Path(spec).exists() and ":" not in spec:
        if Path(spec).suffix or os.sep in spec:
            raise FlowError(f"model {spec}: no such file")
        from .models import list_models
        raise FlowError(f"Unknown model {spec!r}: not a bundled model "
                        f"({', '.join(list_models())}), an existing file or "
                        f"package.module:attr")
    options = dict(format=format, labels=labels, vocab_size=vocab_size, seq_len=seq_len,
                   limit=limit)
    if data is not None:
        return load_data_task(spec, data, calib=calib, test=test, head=head, layout=layout,
                              **options)
    given = next((k for k in DATA_OPTIONS if options[k] is not None), None)
    if given:
        raise FlowError(f"{_option(given)} goes with --data PATH (your data in one of the "
                        f"formats {', '.join(FORMATS)})")
    if calib is None:
        raise FlowError(f"model {spec!r} is not bundled: give its calibration inputs with "
                        f"--calib FILE.npz (sequences in the model's own layout)")
    model = load_model(spec)
    x_raw = read_npz(calib, "--calib", ("x",))["x"]
    if isinstance(model, ModelIR):
        ir = ModelIR(model.layers, model.head, head or model.head_mode, model.meta,
                     model.embedding)
        layout = data_layout(ir.meta, layout)
        _check_inputs(x_raw, ir.input_size, layout, f"--calib {calib}")
    else:
        ir, layout = _torch_ir(model, x_raw, head, layout, f"--calib {calib}")
    x_calib = swap_layout(np.asarray(x_raw, dtype=np.float64), layout)
    name = _task_name(spec)
    meta = {"task": "user", "source": spec, "layout": layout}
    if test is None:
        y = run_float(ir, x_calib, layout=TASK_LAYOUT).argmax(axis=-1)
        task = UserTask(name, ir, meta, x_calib, x_calib, y)
        task.labelled = False
        return task
    data = read_npz(test, "--test", ("x", "y"))
    _check_inputs(data["x"], ir.input_size, layout, f"--test {test}")
    x_test = swap_layout(np.asarray(data["x"], dtype=np.float64), layout)
    y = np.asarray(data["y"])
    want = x_test.shape[:1] if ir.head_mode == "last" else x_test.shape[:2]
    if ir.head_mode == "every" and y.ndim == 2:
        y = swap_layout(y, layout)
    if y.shape != want or y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= ir.output_size:
        shown = want if ir.head_mode == "last" else swap_layout(np.empty(want), layout).shape
        raise FlowError(f"--test {test}: labels 'y' must be integers in 0..{ir.output_size - 1}"
                        f" of shape {shown} (head on {ir.head_mode} step), not "
                        f"{np.asarray(data['y']).dtype} {np.asarray(data['y']).shape}")
    return UserTask(name, ir, meta, x_calib, x_test, y)


def _task_name(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", spec.rpartition(":")[2] if ":" in spec and
                  not Path(spec).exists() else Path(spec).stem) or "model"


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _evenly(n: int, count: int) -> np.ndarray:
    """`count` distinct indices spread evenly over range(n) (all of them if count >= n)."""
    return np.linspace(0, n - 1, min(count, n)).astype(np.int64)


# ---------------------------------------------------------------- data in real formats

def load_data_task(spec: str, data, format=None, calib=None, test=None, labels=None,
                   head=None, layout=None, vocab_size=None, seq_len=None,
                   limit=None) -> Task:
    """The Task of a user's model with data in a real format (`hwgen.loaders`).

    Parameters
    ----------
    spec : the model, as for `load_user_task`.
    data : the data the metric is measured on and, without `calib`, calibrated on:
        imdb: the ``aclImdb`` folder; vocabulary and calibration from ``train/``, metric
        on ``test/``. ptb: the folder of ``ptb.{train,valid,test}.txt``; vocabulary and
        calibration from train, metric (bits per word) on test. kaldi: a text ``.ark``;
        labels from `labels` (``utt-id label`` lines). npz: an ``.npz`` with ``x`` and
        optional ``y`` (or an ``.npy``), in the model's layout. Without labels the metric
        is the argmax agreement with the float model.
    format : "imdb", "ptb", "kaldi" or "npz".
    calib : kaldi or npz: a calibration file in the same format (default: `data`).
    labels : kaldi: the label file.
    vocab_size : imdb, ptb: the vocabulary's size with its special tokens (default: every
        train word).
    seq_len : imdb, kaldi: keep each sequence's last `seq_len` steps; ptb: the sequence
        length (default 35).
    limit : measure the metric on at most `limit` test sequences, evenly spread.

    Calibration uses at most `hwgen.flow.CALIBRATION_SEQUENCES` sequences, evenly spread.
    Token ids reach a model with an ``nn.Embedding`` as ids (its table must have the
    vocabulary's size), any other model one-hot (its first layer taking that size).
    """
    from . import loaders
    if format is None:
        raise FlowError(f"--data {data}: give its --format ({'|'.join(FORMATS)})")
    if format not in FORMATS:
        raise FlowError(f"--format {format!r}: not one of {', '.join(FORMATS)}")
    if test is not None:
        raise FlowError(f"--test: --data {data} is the test data; give one or the other")
    given = {"labels": labels, "vocab_size": vocab_size, "seq_len": seq_len, "calib": calib}
    for name, value in given.items():
        if value is not None and format not in FORMAT_OPTIONS[name]:
            raise FlowError(f"{_option(name)}: not for --format {format} (only "
                            f"{', '.join(FORMAT_OPTIONS[name])})")
    model = load_model(spec)
    where, where_calib = f"--data {data}", f"--calib {calib}" if calib else f"--data {data}"
    if format in TOKEN_FORMATS:
        tokens_in = _embedding_vocab(model)    # None: the model takes tokens one-hot
        width = _first_width(model) if tokens_in is None else tokens_in
        if format == "imdb":
            train = loaders.load_imdb(data, "train", max_vocab=vocab_size, max_len=seq_len)
        else:
            train = loaders.load_ptb(data, "train", seq_len or loaders.PTB_SEQ_LEN,
                                     max_vocab=vocab_size)
        size = len(train.vocab)
        if width != size and tokens_in is not None:
            raise FlowError(f"--data {data} ({format}) has a vocabulary of {size} tokens; the "
                            f"model's nn.Embedding takes {tokens_in} (--vocab-size sets it)")
        if width != size:
            raise FlowError(
                f"--data {data} ({format}) gives token ids; the model's first layer takes "
                f"{width} features: an nn.Embedding front of {size} tokens is needed, or "
                f"one-hot tokens: a first layer of {size} inputs, the vocabulary's size "
                f"(--vocab-size sets it)")
        if format == "imdb":
            test_d = loaders.load_imdb(data, "test", vocab=train.vocab, max_len=seq_len)
        else:
            test_d = loaders.load_ptb(data, "test", seq_len or loaders.PTB_SEQ_LEN,
                                      vocab=train.vocab)
        calib_d, model_layout = train, layout
    elif format == "kaldi":
        test_d = loaders.load_kaldi(data, labels, max_len=seq_len)
        calib_d = loaders.load_kaldi(calib, max_len=seq_len) if calib else test_d
        model_layout = layout
    else:       # npz: arrays in the model's own layout, as --calib/--test files
        model_layout = layout or _own_layout(model)
        if model_layout is None:    # a module that does not record batch_first
            probe = loaders.load_npz(calib or data, labels=False)
            _, model_layout = _torch_ir(model, probe.x, head, None, where_calib)
        test_d = loaders.load_npz(data, model_layout)
        calib_d = loaders.load_npz(calib, model_layout, labels=False) if calib else test_d
    calib_d = calib_d.take(_evenly(len(calib_d), CALIBRATION_SEQUENCES))
    if limit is not None:
        test_d = test_d.take(_evenly(len(test_d), limit))
    if format not in TOKEN_FORMATS:
        width = _first_width(model)
        for d, w in ((calib_d, where_calib), (test_d, where)):
            if d.features != width:
                raise FlowError(f"{w}: {d.features} features per step; the model's first "
                                f"layer takes {width}")
    one_hot = _embedding_vocab(model) is None
    x_calib = _model_inputs(calib_d, where_calib, one_hot)
    x_test = _model_inputs(test_d, where, one_hot)
    if isinstance(model, ModelIR):
        ir = ModelIR(model.layers, model.head, head or model.head_mode, model.meta,
                     model.embedding)
        model_layout = data_layout(ir.meta, model_layout)
    else:
        ir, model_layout = _torch_ir(model, x_calib, head, model_layout, where_calib,
                                     batch_major=True)
    meta = {"task": "user", "source": spec, "layout": model_layout, "data": str(data),
            "format": format}
    name = _task_name(spec)
    if test_d.y is None:
        y = run_float(ir, x_test, layout=TASK_LAYOUT).argmax(axis=-1)
        task = UserTask(name, ir, meta, x_calib, x_test, y)
        task.labelled = False
        return task
    where_y = f"--labels {labels}" if format == "kaldi" else where
    per_step = test_d.y.ndim == 2
    if per_step != (ir.head_mode == "every"):
        gives = "a target per step" if per_step else "one label per sequence"
        reads = "every step" if ir.head_mode == "every" else "the last step"
        raise FlowError(f"{where_y} gives {gives}; the model's head reads {reads}")
    top = int(test_d.y.max())
    if top >= ir.output_size:
        raise FlowError(f"{where_y}: {'target' if per_step else 'label'} {top} is out of "
                        f"range: the model has {ir.output_size} outputs (0.."
                        f"{ir.output_size - 1})")
    return UserTask(name, ir, meta, x_calib, x_test, test_d.y)


def _model_inputs(d, where: str, one_hot: bool = True) -> np.ndarray:
    """Float inputs (N, T, I) of loaded data: features as they are, token ids one-hot, or
    as ids (N, T, 1) for a model with an embedding (`one_hot` False)."""
    if not d.tokens:
        return d.x
    if not one_hot:
        return d.x[..., None].astype(np.float64)
    values = d.x.size * len(d.vocab)
    if values > ONE_HOT_LIMIT:
        raise FlowError(f"{where}: one-hot inputs of {len(d)} x {d.steps} x {len(d.vocab)} "
                        f"values are too many (limit {ONE_HOT_LIMIT:.0e}): give --limit, "
                        f"--seq-len or --vocab-size")
    return np.eye(len(d.vocab))[d.x]


def _embedding_vocab(model) -> int | None:
    """The tokens of the model's nn.Embedding (V), or None for a model without one."""
    if isinstance(model, ModelIR):
        return model.vocab_size
    from .nn import RecurrentClassifier
    if isinstance(model, RecurrentClassifier):
        return from_torch(model).vocab_size
    emb = _find_parts(model)[3]
    return None if emb is None else len(import_embedding(emb))


def _first_width(model) -> int:
    """The features a step of the model's data has: its first recurrent layer's inputs, or
    1 (a token id) behind an embedding (named errors for a model hwgen cannot lower)."""
    from .nn import RecurrentClassifier
    if isinstance(model, ModelIR):
        return model.input_size
    if isinstance(model, RecurrentClassifier):
        return from_torch(model).input_size
    rnn, _, _, emb = _find_parts(model)
    return 1 if emb is not None else _import_rnn(rnn)[0].input_size


def _own_layout(model) -> str | None:
    """The layout the model takes: its own, or None for a module that does not record it."""
    from .nn import RecurrentClassifier
    if isinstance(model, ModelIR):
        return data_layout(model.meta)
    if isinstance(model, RecurrentClassifier):
        return "NTI"
    batch_first = _find_parts(model)[1]
    return None if batch_first is None else ("NTI" if batch_first else "TNI")


# ---------------------------------------------------------------- data files

def read_npz(path, option: str, keys: tuple) -> dict:
    """Arrays `keys` of an .npz file (a lone array stands for ``x``); one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"{option} {path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):  # an .npy file: one array
            arrays = {"x": data}
        else:
            with data:
                arrays = {k: data[k] for k in data.files}
    except Exception:  # zipfile.BadZipFile, ValueError, EOFError, OSError...
        raise FlowError(f"{option} {path}: not a readable .npz file") from None
    if keys == ("x",) and "x" not in arrays and len(arrays) == 1:
        arrays = {"x": next(iter(arrays.values()))}
    missing = [k for k in keys if k not in arrays]
    if missing:
        have = ", ".join(arrays) or "none"
        raise FlowError(f"{option} {path}: no array {missing[0]!r} (arrays: {have})")
    return arrays


def _check_inputs(x, input_size: int, layout: str, where: str) -> None:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != input_size or 0 in x.shape or x.dtype.kind not in "iuf":
        raise FlowError(f"{where}: array 'x' is {x.dtype} {x.shape}; the model takes "
                        f"{shape_name(layout, input_size)} numbers (layout {layout})")
    if not np.all(np.isfinite(x)):
        raise FlowError(f"{where}: array 'x' holds NaN or infinite values")


# ---------------------------------------------------------------- models

def load_model(spec: str):
    """A user's model: a torch module (eval mode), or a ModelIR for an ONNX file."""
    path = Path(spec)
    if path.exists():
        if not path.is_file():
            raise FlowError(f"model {spec}: not a file")
        if path.suffix.lower() == ".onnx":
            from .frontend_onnx import from_onnx
            return from_onnx(path)
        return _load_torch_file(path)
    return _import_attr(spec)


def _load_torch_file(path: Path):
    import torch
    try:
        names = zipfile.ZipFile(path).namelist() if zipfile.is_zipfile(path) else []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")    # torch.jit's deprecation: stderr is for errors
            if any(n.endswith("constants.pkl") for n in names):
                model = torch.jit.load(str(path), map_location="cpu")
            else:
                model = torch.load(str(path), map_location="cpu", weights_only=False)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FlowError(f"model {path}: cannot read it ({exc})") from None
    except Exception as exc:  # unpickling: a class that is not importable, a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ("; its class must be importable: define it in a module, not the script that "
                "saved it, or save a TorchScript file") if "Can't get attribute" in first else ""
        raise FlowError(f"model {path}: cannot load it with torch.load or torch.jit.load "
                        f"({first}){hint}") from None
    return _as_module(model, str(path))


def _import_attr(spec: str):
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())   # like `python -m`: the current folder's packages
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:
        raise FlowError(f"model {spec}: cannot import {module_name!r} "
                        f"({type(exc).__name__}: {exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise FlowError(f"model {spec}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    import torch
    if callable(obj) and not isinstance(obj, torch.nn.Module):
        try:
            obj = obj()
        except Exception as exc:
            raise FlowError(f"model {spec}: calling {attr}() failed "
                            f"({type(exc).__name__}: {exc})") from None
    return _as_module(obj, spec)


def _as_module(obj, where: str):
    import torch
    if not isinstance(obj, torch.nn.Module):
        hint = " (a state_dict: save the whole module, or use package.module:attr)" \
            if isinstance(obj, dict) else ""
        raise FlowError(f"model {where}: holds a {type(obj).__name__}, not a torch "
                        f"module{hint}")
    return obj.eval()


def _kind(module) -> str:
    """How messages name a module's class: nn.LSTM, hwgen.nn.LiGRU, TorchScript's name."""
    cls = type(module)
    if cls.__module__.startswith("torch.nn"):
        return f"nn.{cls.__name__}"
    if cls.__module__.startswith("torch.jit"):
        return f"TorchScript {getattr(module, 'original_name', cls.__name__)}"
    return f"{cls.__module__}.{cls.__name__}"


def _script_rnn(module):
    """A TorchScript nn.LSTM / nn.GRU submodule rebuilt as the torch module (weights copied);
    None for other TorchScript modules. batch_first is None when the file does not keep it
    (a traced module): the forward check then finds it."""
    import torch
    kind = getattr(module, "original_name", "")
    if kind not in ("LSTM", "GRU"):
        return None, None
    params = dict(module.named_parameters(recurse=False))
    w = params.get("weight_ih_l0")
    if w is None:
        return None, None
    hidden = params["weight_hh_l0"].shape[1]
    opts = dict(num_layers=sum(k.startswith("weight_ih_l") and "reverse" not in k
                               for k in params),
                bias="bias_ih_l0" in params,
                bidirectional=any("reverse" in k for k in params))
    if kind == "LSTM" and "weight_hr_l0" in params:
        opts["proj_size"] = params["weight_hr_l0"].shape[0]
    batch_first = getattr(module, "batch_first", None) if hasattr(module, "batch_first") \
        else None
    rnn = getattr(torch.nn, kind)(w.shape[1], hidden, batch_first=bool(batch_first), **opts)
    rnn.load_state_dict({k: v.detach() for k, v in params.items()})
    return rnn.eval(), batch_first


def _script_linear(module):
    """A TorchScript nn.Linear submodule rebuilt as nn.Linear (weights copied)."""
    from torch import nn
    params = dict(module.named_parameters(recurse=False))
    linear = nn.Linear(*params["weight"].shape[::-1], bias="bias" in params)
    linear.load_state_dict({k: v.detach() for k, v in params.items()})
    return linear


def _role(name: str, module, scripted: bool):
    """("rnn", module, batch_first) or ("head", nn.Linear, None) for a part hwgen lowers;
    None for a parameter-free module (the forward check judges it); else a named error."""
    from torch import nn

    from .cells import cell_for_torch_module
    label = f"layer {name or '(top)'!r} ({_kind(module)})"
    own_params = list(module.named_parameters(recurse=False))
    batch_first = getattr(module, "batch_first", True)
    if scripted:
        kind = getattr(module, "original_name", "")
        if kind == "Linear":
            return "head", _script_linear(module), None
        rebuilt, batch_first = _script_rnn(module)
        if rebuilt is None and (own_params or kind in ("RNN", "LiGRU", "SRU")):
            raise UnsupportedModelError(
                f"{label}: not importable from TorchScript; hwgen reads nn.LSTM, nn.GRU and "
                f"nn.Linear submodules of a TorchScript file (save other models with "
                f"torch.save or give package.module:attr)")
        if rebuilt is None:
            return None
        module = rebuilt
    cell = cell_for_torch_module(module)
    if cell is not None:
        reason = cell.unsupported(module)
        if reason:
            raise UnsupportedModelError(f"{label}: {reason} is not supported")
        return "rnn", module, batch_first
    if isinstance(module, nn.RNNBase):
        raise UnsupportedModelError(f"{label}: not a supported recurrent cell; supported: "
                                    f"{SUPPORTED_CELLS}")
    if isinstance(module, nn.Linear):
        return "head", module, None
    if isinstance(module, nn.Embedding):
        return "embedding", module, None
    if own_params:
        raise UnsupportedModelError(f"{label}: not supported; hwgen lowers one recurrent "
                                    f"module ({SUPPORTED_CELLS}) and one nn.Linear head")
    return None


def _find_parts(model):
    """(recurrent module, batch_first or None, head nn.Linear, nn.Embedding or None):
    exactly one of the first three, the recurrent module first, an embedding before it;
    anything else with parameters is a named error."""
    import torch
    scripted = isinstance(model, torch.jit.ScriptModule)
    found = {}                             # role -> (name, module, batch_first)
    for name, module in model.named_modules():
        if "rnn" in found and name.startswith(f"{found['rnn'][0]}."):
            continue                       # the recurrent module's own parts
        part = _role(name, module, scripted)
        if part is None:
            continue
        label = f"layer {name!r} ({_kind(module)})"
        role, module, batch_first = part
        if role == "embedding" and found:
            first = next(iter(found.values()))[0]
            raise UnsupportedModelError(f"{label}: comes after {first!r}; hwgen lowers an "
                                        f"nn.Embedding only in front of the recurrent module")
        if role in found:
            what = {"rnn": "recurrent module", "head": "nn.Linear",
                    "embedding": "nn.Embedding"}[role]
            raise UnsupportedModelError(
                f"{label}: a second {what} after {found[role][0]!r}; hwgen lowers one "
                f"recurrent module (use num_layers=) and one nn.Linear head")
        if role == "rnn" and "head" in found:
            raise UnsupportedModelError(f"{label}: a recurrent module after the nn.Linear "
                                        f"{found['head'][0]!r}; not supported")
        found[role] = (name, module, batch_first)
    if "rnn" not in found:
        raise UnsupportedModelError(f"no recurrent module ({SUPPORTED_CELLS}) in the model")
    if "head" not in found:
        raise UnsupportedModelError(
            f"layer {found['rnn'][0]!r}: no nn.Linear head follows it; hwgen lowers a "
            f"recurrent module with an nn.Linear head")
    embedding = found["embedding"][1] if "embedding" in found else None
    return found["rnn"][1], found["rnn"][2], found["head"][1], embedding


def _forward(model, x: np.ndarray, tokens: bool = False):
    """The torch model's output on `x` as float64 numpy, or None if it does not give one.
    `tokens`: x holds (.., .., 1) token ids, given to the model as integers without the
    last axis (what an nn.Embedding takes)."""
    import torch
    x = torch.as_tensor(x[..., 0], dtype=torch.long) if tokens else \
        torch.as_tensor(x, dtype=torch.float32)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = model(x)
    except Exception:
        return None
    return y.detach().double().numpy() if isinstance(y, torch.Tensor) else None


def _torch_ir(model, x_raw, head, layout, where: str,
              batch_major: bool = False) -> tuple[ModelIR, str]:
    """Import a torch module and check it against its own forward on the calibration data.

    `x_raw` is in `layout` (the module's own when None; for a module that does not record
    ``batch_first``, the one its forward agrees with), or batch-major (N, T, I) whatever the
    module's layout with `batch_major`. `where` names the data in messages.

    Returns the IR and the module's layout (given, its own, or the one the forward agrees
    with).
    """
    from .nn import RecurrentClassifier
    if isinstance(model, RecurrentClassifier):
        ir = from_torch(model, head_mode=head)
        layout = data_layout(ir.meta, layout)
        _check_inputs(x_raw, ir.input_size, "NTI" if batch_major else layout, where)
        return ir, layout
    rnn, batch_first, linear, emb = _find_parts(model)
    layers, lin = _import_rnn(rnn), _import_head(linear)
    if lin.weight.shape[1] != layers[-1].hidden_size:
        raise UnsupportedModelError(f"the nn.Linear head takes {lin.weight.shape[1]} inputs, "
                                    f"but the recurrent module has {layers[-1].hidden_size} "
                                    f"hidden units")
    table = None if emb is None else import_embedding(emb)
    if table is not None and table.shape[1] != layers[0].input_size:
        raise UnsupportedModelError(f"the nn.Embedding gives {table.shape[1]} values per "
                                    f"token, but the recurrent module takes "
                                    f"{layers[0].input_size}")
    own = None if batch_first is None else ("NTI" if batch_first else "TNI")
    layouts = [layout or own] if (layout or own) else list(LAYOUTS)
    _check_inputs(x_raw, layers[0].input_size if table is None else 1,
                  "NTI" if batch_major else layouts[0], where)
    x = np.asarray(x_raw, dtype=np.float64)
    problems = []
    for cand in layouts:
        first = x if batch_major else swap_layout(x, cand)       # batch-major
        sample = swap_layout(first[:CHECK_SEQUENCES], cand)
        y = _forward(model, sample, tokens=table is not None)
        mode = {2: "last", 3: "every"}.get(getattr(y, "ndim", None))
        if mode is None:
            continue
        ir = ModelIR(layers, lin, head or mode, meta={"batch_first": cand == "NTI"},
                     embedding=table)
        y_ir = run_float(ir, sample, layout=cand)
        if y_ir.shape != y.shape:
            problems.append(f"its forward returns shape {y.shape}, the import {y_ir.shape}")
            continue
        error = float(np.max(np.abs(y_ir - y)))
        if error <= TOLERANCE * max(1.0, float(np.max(np.abs(y)))):
            return ir, cand
        problems.append(f"its forward and the import differ by up to {error:.3g}")
    if problems:
        raise UnsupportedModelError(
            f"the model is not {type(rnn).__name__} -> nn.Linear: {problems[0]} on {where}; "
            f"hwgen lowers a recurrent module whose output feeds the nn.Linear head directly")
    if head is None:
        raise UnsupportedModelError(
            f"the model's forward does not return one tensor (N, O) or (N, T, O) on {where}, "
            f"so where the head reads is unknown: give --head last or --head every")
    return ModelIR(layers, lin, head, meta={"batch_first": layouts[0] == "NTI"},
                   embedding=table), layouts[0]
