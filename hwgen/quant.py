"""Post-training quantization: calibrate on sample sequences, choose formats, make a QModel.

Two schemes, at the same word widths:

* "calibrated" (default): a format per tensor (each layer's input/recurrent weights,
  biases, hidden and cell state, pre-activations; the head's weights, bias and outputs),
  its fraction chosen from that tensor's calibrated values by least squared quantization
  error (`method="mse"`, which may clip rare outliers) or by its maximum (`method="max"`).
* "global": one format for every tensor, its fraction set by the largest value of any
  tensor — what common HLS flows do with a single ap_fixed type.

Any tensor can be overridden by name (see `tensor_names`), e.g. to keep one path wide:
``QuantConfig(weight_bits=4, overrides={"l0.wh": 16})``.

The calibration data is checked before anything is computed (`check_calibration_data`):
a wrong rank or feature count, no values, or one NaN/inf raises `CalibrationDataError`. A
calibrated tensor that is zero on every calibration value says nothing about its range: it
gets Q(w, w-1) (range +/-1, the activations' format) with a `CalibrationWarning`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
import warnings

import numpy as np

from .cells import get_cell
from .fixed import QFormat, frac_for_range, frac_min_mse
from .ir import ModelIR, TokenIdError, data_layout, shape_name, swap_layout, token_ids
from .pwl import DEFAULT_X_MAX, fit_pwl
from .qmodel import QHead, QLayer, QModel, embedding_bits
from .ref import run_float

SCHEMES = ("calibrated", "global")
EMBEDDING_DESIGNS = ("auto", "token_rom", "folded")
METHODS = ("mse", "max")
PRE_CLIP = max(DEFAULT_X_MAX.values())  # pre-activations beyond this saturate the PWL anyway


class QuantConfigError(ValueError):
    """A quantization option is out of range or names an unknown tensor."""


class CalibrationDataError(QuantConfigError):
    """The calibration data has the wrong shape, no values, or a NaN or infinite value."""


class CalibrationWarning(UserWarning):
    """A calibrated tensor is zero on all calibration data: its format is a default."""


# tensors whose format comes from calibrated values (not weights, biases or activations)
CALIBRATED = ("input", "h", "c", "pre", "out")


def tensor_names(n_layers: int, cell: str) -> list[str]:
    """Names that `QuantConfig.overrides` accepts for a model of this shape.

    Per layer k: ``l<k>.`` and each of the cell's `Cell.quantized_tensors` (weights wx, wh,
    bias b, state h, pre-activations pre, activations act, then its other state, e.g. c).
    """
    per_layer = get_cell(cell).quantized_tensors()
    names = ["input"]
    for k in range(n_layers):
        names += [f"l{k}.{t}" for t in per_layer]
    return names + ["head.w", "head.b", "out"]


@dataclass
class QuantConfig:
    """Word widths and options of post-training quantization.

    Parameters
    ----------
    weight_bits : width of recurrent and head weights (2-16).
    act_bits : width of inputs, hidden/cell state, pre-activations, activations (4-16).
    bias_bits : width of biases (kept wide by default: they are few).
    out_bits : width of the head's outputs; defaults to max(act_bits, 8).
    scheme : "calibrated" (format per tensor) or "global" (one format for all).
    method : "mse" or "max" fraction choice for calibrated formats.
    overrides : tensor name -> width (int) or QFormat; see `tensor_names`.
    pwl_segments, pwl_slope_form : PWL sigmoid/tanh table size and slope form.
    embedding : how a model's nn.Embedding is built (`EMBEDDING_DESIGNS`): "auto" takes the
        one of less memory (`hwgen.qmodel.embedding_bits`), "token_rom" a table in front of
        layer 0, "folded" W_x E precomputed, layer 0 taking the token one-hot.
    """

    weight_bits: int = 8
    act_bits: int = 8
    bias_bits: int = 16
    out_bits: int | None = None
    scheme: str = "calibrated"
    method: str = "mse"
    overrides: dict = field(default_factory=dict)
    pwl_segments: int = 16
    pwl_slope_form: str = "mult"
    embedding: str = "auto"

    def width(self, name: str) -> int:
        """The word width of tensor `name`: its override's, else its kind's."""
        override = self.overrides.get(name)
        if isinstance(override, QFormat):
            return override.width
        if isinstance(override, int):
            return override
        kind = name.split(".")[-1]
        if kind in ("wx", "wh", "w", "v"):
            return self.weight_bits
        if kind == "b":
            return self.bias_bits if self.scheme == "calibrated" else self.weight_bits
        if kind == "out":
            return self.out_bits or max(self.act_bits, 8)
        return self.act_bits

    def validate(self, n_layers: int, cell: str) -> None:
        def check(name, value, lo, hi):
            if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise QuantConfigError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
        check("weight_bits", self.weight_bits, 2, 16)
        check("act_bits", self.act_bits, 4, 16)
        check("bias_bits", self.bias_bits, 2, 32)
        if self.out_bits is not None:
            check("out_bits", self.out_bits, 4, 32)
        check("pwl_segments", self.pwl_segments, 1, 1024)
        if self.pwl_slope_form not in ("mult", "shift"):
            raise QuantConfigError(f"pwl_slope_form must be 'mult' or 'shift', "
                                   f"not {self.pwl_slope_form!r}")
        if self.embedding not in EMBEDDING_DESIGNS:
            raise QuantConfigError(f"embedding must be one of {EMBEDDING_DESIGNS}, "
                                   f"not {self.embedding!r}")
        if self.scheme not in SCHEMES:
            raise QuantConfigError(f"scheme must be one of {SCHEMES}, not {self.scheme!r}")
        if self.method not in METHODS:
            raise QuantConfigError(f"method must be one of {METHODS}, not {self.method!r}")
        known = tensor_names(n_layers, cell)
        for name, value in self.overrides.items():
            if name not in known:
                raise QuantConfigError(f"Unknown tensor {name!r} in overrides; "
                                       f"known: {', '.join(known)}")
            if not isinstance(value, (int, QFormat)):
                raise QuantConfigError(f"Override {name!r} must be a width or a QFormat, "
                                       f"not {value!r}")


def check_calibration_data(model: ModelIR, x_calib, layout: str | None = None) -> np.ndarray:
    """Check calibration sequences; return them as batch-major (N, T, I) float64.

    Parameters
    ----------
    model : the float model they calibrate.
    x_calib : (N, T, I) floats, or (T, N, I) in a time-major layout.
    layout : "NTI", "TNI" or None for the model's own (see `hwgen.ir.data_layout`).

    Raises
    ------
    CalibrationDataError
        Not numbers, not 3-D, a feature count other than the model's input size, no
        values, or a NaN or infinite value (the message gives the first one's position).
    """
    lay = data_layout(model.meta, layout)
    try:
        x = np.asarray(x_calib, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CalibrationDataError(f"calibration data must be an array of numbers ({e})") \
            from None
    want = shape_name(lay, model.input_size)
    if x.ndim != 3:
        raise CalibrationDataError(f"calibration data must be 3-D {want}, not shape {x.shape}")
    if x.shape[2] != model.input_size:
        raise CalibrationDataError(f"calibration data has {x.shape[2]} features per step, "
                                   f"the model takes {model.input_size}")
    if x.size == 0:
        raise CalibrationDataError(f"calibration data is empty: shape {x.shape}, want {want}")
    x = swap_layout(x, lay)
    if model.embedding is not None:
        try:
            token_ids(x, model.vocab_size)
        except TokenIdError as e:
            raise CalibrationDataError(f"calibration data: {e}") from None
    for bad, what in ((np.isnan(x), "NaN"), (np.isinf(x), "infinite")):
        if bad.any():
            n, t, i = np.argwhere(bad)[0]
            raise CalibrationDataError(
                f"calibration data has {int(bad.sum())} {what} value(s) "
                f"(first at sequence {n}, step {t}, feature {i})")
    return x


def calibrate(model: ModelIR, x_calib, layout: str | None = None) -> dict[str, np.ndarray]:
    """Values of every tensor on calibration sequences, keyed by tensor name.

    `x_calib` is in the model's layout unless `layout` says otherwise; it is not checked
    (`quantize_model` checks it with `check_calibration_data` first).
    """
    record: list = []
    out = run_float(model, x_calib, record, layout)
    # an embedding's table is the first layer's input: calibrated on all of it, as a weight
    # matrix is (every row is stored and any token may come, not only those seen here)
    inputs = x_calib if model.embedding is None else model.embedding
    values = {"input": np.asarray(inputs, dtype=np.float64), "out": out}
    for k, (layer, rec) in enumerate(zip(model.layers, record)):
        values[f"l{k}.h"] = rec["h"]
        values[f"l{k}.pre"] = np.clip(np.stack(rec["pre"]), -PRE_CLIP, PRE_CLIP)
        for name in layer.spec.extra_state + layer.spec.calibrated:
            values[f"l{k}.{name}"] = np.stack(rec[name])
        values[f"l{k}.b"] = layer.spec.accumulator_bias(layer.b_ih, layer.b_hh,
                                                        layer.hidden_size)
        values[f"l{k}.wx"] = layer.w_ih
        values[f"l{k}.wh"] = layer.w_hh
        if layer.vectors:  # the cell's element-wise vectors share one format
            values[f"l{k}.v"] = np.concatenate(list(layer.vectors.values()))
        values[f"l{k}.act"] = np.array([-1.0, 1.0])
    values["head.w"] = model.head.weight
    values["head.b"] = model.head.bias
    return values


class _FormatChooser:
    """Picks each tensor's format by the config's scheme, method and overrides."""

    def __init__(self, config: QuantConfig, values: dict, cell=None):
        self.config = config
        self.values = values
        self.calibrated = CALIBRATED + (cell.calibrated if cell is not None else ())
        if config.scheme == "global":
            peak = max(float(np.max(np.abs(v))) for v in values.values() if np.size(v))
            self.global_peak = peak

    def __call__(self, name: str, frac_cap: int | None = None) -> QFormat:
        override = self.config.overrides.get(name)
        if isinstance(override, QFormat):
            return override
        width = self.config.width(name)
        if self.config.scheme == "global":
            frac = frac_for_range(self.global_peak, width)
        elif name.endswith(".act"):
            frac = width - 1  # sigmoid/tanh outputs: [-1, 1) is known, not calibrated
        elif name.split(".")[-1] in self.calibrated and not np.any(self.values[name]):
            frac = width - 1  # no range to calibrate: that of the activations
            warnings.warn(f"tensor {name!r} is zero on all calibration data: using the "
                          f"default format {QFormat(width, frac)} (range +/-1); calibrate "
                          f"on representative data", CalibrationWarning, stacklevel=3)
        elif self.config.method == "max" or name.endswith(".b"):
            frac = frac_for_range(float(np.max(np.abs(self.values[name]))), width)
        elif name.endswith(".pre"):
            # judged through tanh, the steeper activation: clipping a pre-activation
            # costs what it changes in the gate, not in the raw value
            frac = frac_min_mse(self.values[name], width, transform=np.tanh)
        else:
            frac = frac_min_mse(self.values[name], width)
        if frac_cap is not None:
            frac = min(frac, frac_cap)
        return QFormat(width, frac)


def _gate_rows(layer, fmt_x: QFormat, fmt_h: QFormat, bias_fmt_fn, chooser, k):
    """Integer weights and biases in accumulator row order (see hwgen.qmodel)."""
    w_x, w_h = layer.spec.accumulator_weights(fmt_x.quantize(layer.w_ih),
                                              fmt_h.quantize(layer.w_hh), layer.hidden_size)
    bias_float = chooser.values[f"l{k}.b"]
    b_fmt = bias_fmt_fn(w_x, w_h)
    return w_x, w_h, b_fmt, b_fmt.quantize(bias_float)


def embedding_design(model: ModelIR, config: QuantConfig) -> str:
    """The config's embedding design, or for "auto" the one of less memory at its widths."""
    if config.embedding != "auto":
        return config.embedding
    first = model.layers[0]
    bits = embedding_bits(model.vocab_size, first.input_size,
                          first.spec.rows_fed("x", first.hidden_size),
                          config.width("input"), config.width("l0.wx"))
    return "folded" if bits["folded_bits"] < bits["token_rom_bits"] else "token_rom"


def _quantize_folded(model: ModelIR, x: np.ndarray, config: QuantConfig) -> QModel:
    """Quantize with the embedding folded into layer 0: W_x E, a weight matrix calibrated
    as any, on one-hot inputs whose format holds 1.0 exactly (range +/-2)."""
    first = model.layers[0]
    folded = ModelIR([replace(first, w_ih=first.w_ih @ np.asarray(model.embedding).T)]
                     + model.layers[1:], model.head, model.head_mode, dict(model.meta))
    one_hot = np.eye(model.vocab_size)[token_ids(x, model.vocab_size)]
    width = config.width("input")
    overrides = dict(config.overrides)
    overrides.setdefault("input", QFormat(width, width - 2))
    qm = quantize_model(folded, one_hot, replace(config, overrides=overrides), layout="NTI")
    qm.folded_dim = first.input_size
    return qm


def quantize_model(model: ModelIR, x_calib, config: QuantConfig | None = None,
                   layout: str | None = None) -> QModel:
    """Calibrate `model` on sample sequences and return the quantized model.

    Parameters
    ----------
    model : the float model.
    x_calib : (N, T, I) floats, or (T, N, I) for a time-major model (see `layout`).
    config : widths and options; `QuantConfig()` by default.
    layout : "NTI", "TNI", or None for the model's own (see `hwgen.ir.data_layout`).

    Raises
    ------
    QuantConfigError
        A bad option; `CalibrationDataError` (a subclass) for bad calibration data. Both
        before anything is computed.
    """
    config = config or QuantConfig()
    config.validate(len(model.layers), model.cell)
    x_checked = check_calibration_data(model, x_calib, layout)
    if model.embedding is not None and embedding_design(model, config) == "folded":
        return _quantize_folded(model, x_checked, config)
    values = calibrate(model, x_checked, layout="NTI")
    choose = _FormatChooser(config, values, model.spec)
    x_fmt = choose("input")
    layers = []
    for k, layer in enumerate(model.layers):
        wx_fmt = choose(f"l{k}.wx")
        # a cell with no recurrent matrix (SRU): W_h is all zero rows, its format wx's
        wh_fmt = choose(f"l{k}.wh") if layer.spec.blocks_h else wx_fmt
        v_fmt = choose(f"l{k}.v") if layer.vectors else None
        h_fmt, pre_fmt, act_fmt = choose(f"l{k}.h"), choose(f"l{k}.pre"), choose(f"l{k}.act")
        c_fmt = choose(f"l{k}.c") if layer.spec.has_cell_state else None
        acc_frac = max(wx_fmt.frac + x_fmt.frac, wh_fmt.frac + h_fmt.frac)
        w_x, w_h, b_fmt, bias = _gate_rows(
            layer, wx_fmt, wh_fmt, lambda *_: choose(f"l{k}.b", frac_cap=acc_frac), choose, k)
        pwl = dict(segments=config.pwl_segments, slope_form=config.pwl_slope_form)
        pwl_input = {"pre": pre_fmt, "c": c_fmt}
        tables = {attr: fit_pwl(func, pwl_input[source], act_fmt, **pwl)
                  for attr, (func, source) in layer.spec.pwls.items()}
        layers.append(QLayer(
            cell=layer.cell, x_fmt=x_fmt, h_fmt=h_fmt, c_fmt=c_fmt, wx_fmt=wx_fmt,
            wh_fmt=wh_fmt, b_fmt=b_fmt, pre_fmt=pre_fmt, act_fmt=act_fmt, w_x=w_x, w_h=w_h,
            bias=bias, extra_fmts={name: choose(f"l{k}.{name}")
                                   for name in layer.spec.calibrated},
            v_fmt=v_fmt, vectors={name: v_fmt.quantize(v) for name, v in layer.vectors.items()},
            **tables))
        x_fmt = h_fmt
    w_fmt = choose("head.w")
    b_fmt = choose("head.b", frac_cap=w_fmt.frac + x_fmt.frac)
    head = QHead(in_fmt=x_fmt, w_fmt=w_fmt, b_fmt=b_fmt, out_fmt=choose("out"),
                 weight=w_fmt.quantize(model.head.weight),
                 bias=b_fmt.quantize(model.head.bias))
    meta = dict(model.meta, quant=dict(weight_bits=config.weight_bits,
                                       act_bits=config.act_bits, scheme=config.scheme,
                                       method=config.method))
    embedding = None if model.embedding is None else layers[0].x_fmt.quantize(model.embedding)
    return QModel(layers, head, model.head_mode, meta, embedding=embedding)
