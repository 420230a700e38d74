"""ONNX import: LSTM / GRU nodes with Gemm or MatMul(+Add) heads give the torch import's IR
and QModel; what it cannot represent is refused by node and feature; the CLI takes .onnx."""
import warnings

import numpy as np
from onnx import TensorProto, helper, numpy_helper
import pytest
import torch
from torch import nn

from hwgen.cli import EXIT_ERROR, EXIT_OK, main
from hwgen.frontend import UnsupportedModelError, from_torch
from hwgen.frontend_onnx import from_onnx
from hwgen.quant import QuantConfig, quantize_model
from hwgen.ref import run_float, run_int

from conftest import make_model

TORCH_TO_ONNX = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}  # ONNX block k <- torch block


def export(model, path, steps=4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, steps, model.rnn.input_size),), str(path),
                          dynamo=False)
    return path


def torch_out(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


def same_qmodel(a, b):
    assert [la.formats() for la in a.layers] == [lb.formats() for lb in b.layers]
    assert a.head.formats() == b.head.formats()
    for la, lb in zip(a.layers + [a.head], b.layers + [b.head]):
        for key, value in vars(la).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, vars(lb)[key], err_msg=key)


@pytest.mark.parametrize("cell,head_mode,layers", [("lstm", "last", 2), ("gru", "every", 1),
                                                   ("gru", "last", 1), ("lstm", "every", 1)])
def test_torch_export_imports_like_torch(tmp_path, rng, cell, head_mode, layers):
    model = make_model(cell, input_size=5, hidden=7, layers=layers, head_mode=head_mode)
    ir = from_onnx(export(model, tmp_path / "m.onnx"))
    assert (ir.cell, ir.head_mode, len(ir.layers), ir.meta) == \
        (cell, head_mode, layers, {"batch_first": True})
    x = rng.normal(size=(6, 9, 5))
    np.testing.assert_allclose(run_float(ir, x), torch_out(model, x), atol=1e-5)
    config = QuantConfig(weight_bits=8, act_bits=8)
    qm, qt = (quantize_model(m, x, config) for m in (ir, from_torch(model)))
    same_qmodel(qm, qt)
    np.testing.assert_array_equal(run_int(qm, qm.quantize_inputs(x)),
                                  run_int(qt, qt.quantize_inputs(x)))


def hand_graph(rnn, linear, attrs=None, after=None, initial_h=None):
    """A time-major ONNX graph built by hand: rnn node -> Y_h -> Squeeze -> Gemm (-> after)."""
    op = type(rnn).__name__
    hidden, gates = rnn.hidden_size, len(TORCH_TO_ONNX[op])

    def order(t):
        m = t.detach().double().numpy()
        return m.reshape((gates, hidden) + m.shape[1:])[TORCH_TO_ONNX[op]].reshape(m.shape)

    inits = [numpy_helper.from_array(order(rnn.weight_ih_l0)[None], "W"),
             numpy_helper.from_array(order(rnn.weight_hh_l0)[None], "R"),
             numpy_helper.from_array(np.concatenate([order(rnn.bias_ih_l0),
                                                     order(rnn.bias_hh_l0)])[None], "B"),
             numpy_helper.from_array(linear.weight.detach().double().numpy(), "fc_w"),
             numpy_helper.from_array(linear.bias.detach().double().numpy(), "fc_b"),
             numpy_helper.from_array(np.array([0]), "axes")]
    inputs = ["x", "W", "R", "B", ""]
    if initial_h is not None:
        inits.append(numpy_helper.from_array(initial_h, "h0"))
        inputs.append("h0")
    rnn_attrs = {"hidden_size": hidden, **({"linear_before_reset": 1} if op == "GRU" else {}),
                 **(attrs or {})}
    nodes = [helper.make_node(op, inputs, ["y", "y_h"], name="rnn", **rnn_attrs),
             helper.make_node("Squeeze", ["y_h", "axes"], ["h"], name="squeeze"),
             helper.make_node("Gemm", ["h", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    out = "logits"
    if after:
        nodes.append(helper.make_node(after, ["logits"], ["out"], name="post"))
        out = "out"
    graph = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, None, 5])],
        [helper.make_tensor_value_info(out, TensorProto.DOUBLE, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_hand_built_time_major_graph(rng, cls):
    torch.manual_seed(0)
    rnn, linear = cls(5, 6).double().eval(), nn.Linear(6, 3).double().eval()
    ir = from_onnx(hand_graph(rnn, linear))
    assert (ir.head_mode, ir.meta) == ("last", {"batch_first": False})
    x = rng.normal(size=(8, 4, 5))                                     # (T, N, I)
    with torch.no_grad():
        want = linear(rnn(torch.as_tensor(x))[0][-1]).numpy()
    np.testing.assert_allclose(run_float(ir, x), want, atol=1e-10)


def bad_graphs():
    torch.manual_seed(0)
    gru, lstm, linear = nn.GRU(5, 6), nn.LSTM(5, 6), nn.Linear(6, 3)
    return [
        (hand_graph(gru, linear, {"linear_before_reset": 0}),
         "node 'rnn' (GRU): linear_before_reset=0 (reset gate before the recurrent weights); "
         "hwgen needs linear_before_reset=1, the form of PyTorch's nn.GRU"),
        (hand_graph(lstm, linear, {"direction": "reverse"}),
         "node 'rnn' (LSTM): direction='reverse'; hwgen imports forward recurrent layers only"),
        (hand_graph(lstm, linear, {"activations": ["Sigmoid", "Relu", "Tanh"]}),
         "node 'rnn' (LSTM): activations ['Sigmoid', 'Relu', 'Tanh']; hwgen supports "
         "['Sigmoid', 'Tanh', 'Tanh']"),
        (hand_graph(lstm, linear, after="Softmax"),
         "node 'post' (Softmax): not supported; hwgen imports forward LSTM or GRU nodes "
         "followed by a Gemm or MatMul(+Add) head"),
        (hand_graph(gru, linear, initial_h=np.ones((1, 1, 6))),
         "node 'rnn' (GRU): a non-zero initial_h is not supported; hwgen starts every "
         "sequence from a zero state"),
    ]


def test_refusals_name_node_and_feature():
    for model, message in bad_graphs():
        with pytest.raises(UnsupportedModelError) as info:
            from_onnx(model)
        assert str(info.value) == message


@pytest.mark.slow
def test_cli_onnx_generate_and_simulate(tmp_path, capsys, rng):
    """The end-to-end path: a torch export, `hwgen generate x.onnx --calib`, `simulate`."""
    model = make_model("gru", input_size=5, hidden=6, out=3)
    export(model, tmp_path / "model.onnx")
    np.savez(tmp_path / "c.npz", x=rng.normal(size=(10, 6, 5)))
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 20)
    out = tmp_path / "out"
    code = main(["generate", str(tmp_path / "bad.onnx"), "--calib", str(tmp_path / "c.npz"),
                 "--out", str(out)])
    assert (code, capsys.readouterr().err) == (
        EXIT_ERROR, f"hwgen: error: {tmp_path / 'bad.onnx'}: not a readable ONNX file "
                    f"(DecodeError)\n") and not out.exists()
    code = main(["generate", str(tmp_path / "model.onnx"), "--calib", str(tmp_path / "c.npz"),
                 "--lanes", "3", "--out", str(out)])
    assert code == EXIT_OK and (out / "model_p3" / "manifest.json").exists()
    capsys.readouterr()
    assert main(["simulate", str(out / "model_p3"), "--max-sequences", "4"]) == EXIT_OK
    assert "mismatches        0" in capsys.readouterr().out
