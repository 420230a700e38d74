"""ONNX graphs -> float IR: forward `LSTM` / `GRU` nodes followed by a `Gemm` or `MatMul`
(+ `Add`) head, as `torch.onnx.export` writes them (and Keras' or another framework's
exporter can). Refuses what it cannot represent, naming the node and the feature.

ONNX gate orders differ from the IR's (PyTorch's): LSTM rows are (i, o, f, c), GRU rows
(z, r, h); the import permutes them into (i, f, g, o) and (r, z, n). A GRU must have
``linear_before_reset=1`` (PyTorch's reset-after form; `hwgen.cells.gru`). The data path may
hold layout plumbing (Transpose, Squeeze, ...); shape arithmetic off that path is ignored.
"""
from __future__ import annotations

import numpy as np

from .frontend import UnsupportedModelError
from .ir import LinearHead, ModelIR, RNNLayer

RNN_CELLS = {"LSTM": "lstm", "GRU": "gru"}
GATE_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}  # ONNX block k -> IR position
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
PLUMBING = {"Transpose", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Gather", "Slice"}
SHAPE_OPS = {"Constant", "Shape", "Concat", "Expand", "ConstantOfShape", "Cast"}
HEAD_OPS = {"Gemm", "MatMul", "Add"}
KNOWN_OPS = set(RNN_CELLS) | PLUMBING | SHAPE_OPS | HEAD_OPS
SUPPORTED = "forward LSTM or GRU nodes followed by a Gemm or MatMul(+Add) head"


def _label(node) -> str:
    return f"node {node.name or node.output[0]!r} ({node.op_type})"


def _attrs(node) -> dict:
    from onnx import helper
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else
            [s.decode() if isinstance(s, bytes) else s for s in v] if isinstance(v, list) else v
            for k, v in values.items()}


class _Graph:
    """Constants, producers and the one data input of an ONNX graph."""

    def __init__(self, graph):
        from onnx import numpy_helper
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute:
                value = node.attribute[0]
                if value.name == "value":
                    self.consts[node.output[0]] = numpy_helper.to_array(value.t)
        self.producer = {out: node for node in graph.node for out in node.output}
        self.inputs = [i.name for i in graph.input if i.name not in self.consts]

    def const(self, name: str, node, what: str) -> np.ndarray:
        if name not in self.consts:
            raise UnsupportedModelError(f"{_label(node)}: {what} {name!r} is computed, not a "
                                        f"constant; hwgen needs constant weights")
        return self.consts[name].astype(np.float64)

    def trace(self, name: str, stops: set, what: str) -> list:
        """The plumbing nodes on the data path from a tensor in `stops` to `name`."""
        path = []
        while name not in stops:
            node = self.producer.get(name)
            if node is None:
                raise UnsupportedModelError(f"tensor {name!r} ({what}) does not come from "
                                            f"the graph input; hwgen imports {SUPPORTED}")
            if node.op_type not in PLUMBING:
                raise UnsupportedModelError(f"{_label(node)} on the path to {what}: not "
                                            f"supported; hwgen imports {SUPPORTED}")
            path.append(node)
            name = node.input[0]
        return path[::-1]

    def zero_state(self, name: str) -> bool:
        """Whether an initial state is all zeros (constants and shape arithmetic only)."""
        todo, seen = [name], set()
        while todo:
            name = todo.pop()
            if not name or name in seen:
                continue
            seen.add(name)
            if name in self.consts:
                value = self.consts[name]
                if value.dtype.kind == "f" and np.any(value != 0):
                    return False
                continue
            node = self.producer.get(name)
            if node is None:
                return False               # a graph input
            if node.op_type == "Shape":
                continue
            if node.op_type == "ConstantOfShape" and node.attribute:
                from onnx import numpy_helper
                if np.any(numpy_helper.to_array(node.attribute[0].t) != 0):
                    return False
            todo.extend(node.input)
        return True


def _rnn_layer(g: _Graph, node) -> tuple[RNNLayer, int]:
    """One forward LSTM/GRU node -> (IR layer, its ONNX ``layout`` attribute)."""
    op, attrs = node.op_type, _attrs(node)
    label = _label(node)
    direction = attrs.get("direction", "forward")
    if direction != "forward":
        raise UnsupportedModelError(f"{label}: direction={direction!r}; hwgen imports forward "
                                    f"recurrent layers only")
    if op == "GRU" and attrs.get("linear_before_reset", 0) != 1:
        raise UnsupportedModelError(
            f"{label}: linear_before_reset={attrs.get('linear_before_reset', 0)} (reset gate "
            f"before the recurrent weights); hwgen needs linear_before_reset=1, the form of "
            f"PyTorch's nn.GRU")
    acts = attrs.get("activations", DEFAULT_ACTIVATIONS[op])
    if [a.lower() for a in acts] != [a.lower() for a in DEFAULT_ACTIVATIONS[op]]:
        raise UnsupportedModelError(f"{label}: activations {acts}; hwgen supports "
                                    f"{DEFAULT_ACTIVATIONS[op]}")
    for name in ("clip", "input_forget"):
        if attrs.get(name):
            raise UnsupportedModelError(f"{label}: {name}={attrs[name]} is not supported")
    inputs = list(node.input) + [""] * (8 - len(node.input))
    if inputs[4]:
        raise UnsupportedModelError(f"{label}: sequence_lens (sequences of different "
                                    f"lengths) is not supported")
    for k, what in ((5, "initial_h"), (6, "initial_c")):
        if inputs[k] and not g.zero_state(inputs[k]):
            raise UnsupportedModelError(f"{label}: a non-zero {what} is not supported; hwgen "
                                        f"starts every sequence from a zero state")
    if op == "LSTM" and inputs[7] and np.any(g.const(inputs[7], node, "peephole P") != 0):
        raise UnsupportedModelError(f"{label}: peephole weights (P) are not supported")
    w, r = g.const(inputs[1], node, "W")[0], g.const(inputs[2], node, "R")[0]
    hidden, gates = r.shape[1], len(GATE_ORDER[op])
    b = (g.const(inputs[3], node, "B")[0] if inputs[3] else np.zeros(2 * gates * hidden))

    def order(m):
        return m.reshape((gates, hidden) + m.shape[1:])[GATE_ORDER[op]].reshape(m.shape)

    b_ih, b_hh = order(b[:gates * hidden]), order(b[gates * hidden:])
    return RNNLayer(RNN_CELLS[op], order(w), order(r), b_ih, b_hh), attrs.get("layout", 0)


def _head(g: _Graph, graph) -> tuple[LinearHead, str]:
    """The head producing the graph's one output -> (LinearHead, its data input)."""
    if len(graph.output) != 1:
        raise UnsupportedModelError(f"the graph has {len(graph.output)} outputs; hwgen "
                                    f"imports one (the head's)")
    node = g.producer.get(graph.output[0].name)
    while node is not None and node.op_type == "Identity":
        node = g.producer.get(node.input[0])
    if node is None or node.op_type not in HEAD_OPS:
        what = _label(node) if node is not None else "the graph input"
        raise UnsupportedModelError(f"{what} makes the output: hwgen imports {SUPPORTED} "
                                    f"and nothing after the head")
    if node.op_type == "Gemm":
        attrs = _attrs(node)
        if attrs.get("transA", 0):
            raise UnsupportedModelError(f"{_label(node)}: transA=1 is not supported")
        b = g.const(node.input[1], node, "B") * attrs.get("alpha", 1.0)
        weight = b if attrs.get("transB", 0) else b.T
        c = (g.const(node.input[2], node, "C") * attrs.get("beta", 1.0)
             if len(node.input) > 2 and node.input[2] else 0.0)
        return LinearHead(weight, np.broadcast_to(c, weight.shape[:1]).copy()), node.input[0]
    bias = np.zeros(0)
    if node.op_type == "Add":
        data = [i for i in node.input if i not in g.consts]
        consts = [i for i in node.input if i in g.consts]
        if len(data) != 1 or not consts:
            raise UnsupportedModelError(f"{_label(node)}: an Add that is not a head's bias")
        bias = g.const(consts[0], node, "bias").reshape(-1)
        node = g.producer.get(data[0])
        if node is None or node.op_type != "MatMul":
            raise UnsupportedModelError(f"{_label(node) if node else 'the input'} before "
                                        f"the head's Add: expected MatMul")
    weight = g.const(node.input[1], node, "weight").T
    bias = bias if bias.size else np.zeros(weight.shape[0])
    return LinearHead(weight, np.broadcast_to(bias, weight.shape[:1]).copy()), node.input[0]


def _swaps(path: list, what: str) -> int:
    """How many times the Transposes on `path` swap the first two axes (0 or 1)."""
    swaps = 0
    for node in path:
        if node.op_type == "Transpose":
            perm = list(_attrs(node).get("perm", []))
            if perm not in ([1, 0, 2], [0, 1, 2]):
                raise UnsupportedModelError(f"{_label(node)} on the path to {what}: "
                                            f"perm={perm} is not supported")
            swaps ^= perm == [1, 0, 2]
    return swaps


def load_onnx(path):
    """An ONNX file as a ModelProto; a FlowError-style ValueError for what is not one."""
    import onnx
    try:
        return onnx.load(str(path))
    except OSError:
        raise
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UnsupportedModelError(f"{path}: not a readable ONNX file "
                                    f"({type(exc).__name__})") from None


def from_onnx(model) -> ModelIR:
    """Import an ONNX model (a path or `onnx.ModelProto`).

    Parameters
    ----------
    model : path or onnx.ModelProto; one graph input, forward LSTM or GRU nodes (one cell
        type, each feeding the next), then a Gemm or MatMul(+Add) head making the one output.

    Returns
    -------
    ModelIR
        Its head_mode is "last" when the head reads the last step (a Gather/Slice of step
        -1, or the node's Y_h output), else "every"; its meta's ``batch_first`` is the
        graph input's layout (the first node's ``layout`` and the Transposes before it).

    Raises
    ------
    UnsupportedModelError
        Naming the node and the feature hwgen cannot represent.
    """
    if not hasattr(model, "graph"):
        model = load_onnx(model)
    graph = model.graph
    g = _Graph(graph)
    for node in graph.node:
        if node.op_type not in KNOWN_OPS:
            raise UnsupportedModelError(f"{_label(node)}: not supported; hwgen imports "
                                        f"{SUPPORTED}")
    rnns = [n for n in graph.node if n.op_type in RNN_CELLS]
    if not rnns:
        raise UnsupportedModelError(f"no LSTM or GRU node; hwgen imports {SUPPORTED}")
    for node in rnns[1:]:
        if node.op_type != rnns[0].op_type:
            raise UnsupportedModelError(f"{_label(node)} after {rnns[0].op_type}: all "
                                        f"recurrent layers must be of one cell type")
    if len(g.inputs) != 1:
        raise UnsupportedModelError(f"the graph has inputs {g.inputs}; hwgen imports a "
                                    f"graph with one input (the sequences)")
    layers, node_layouts = zip(*(_rnn_layer(g, n) for n in rnns))
    swaps = _swaps(g.trace(rnns[0].input[0], {g.inputs[0]}, _label(rnns[0])), "the input")
    for prev, node in zip(rnns, rnns[1:]):
        path = g.trace(node.input[0], {prev.output[0]}, _label(node))
        if _swaps(path, _label(node)) != (node_layouts[0] != _attrs(node).get("layout", 0)) \
                or any(n.op_type in ("Gather", "Slice") for n in path):
            raise UnsupportedModelError(f"{_label(node)}: its input is not the full output "
                                        f"sequence of {_label(prev)}")
    head, head_input = _head(g, graph)
    last = rnns[-1]
    path = g.trace(head_input, {o for o in last.output[:2] if o}, "the head")
    picks = [n for n in path if n.op_type in ("Gather", "Slice")]
    for node in picks:
        index = g.consts.get(node.input[1]) if len(node.input) > 1 else None
        if index is None or np.ravel(index).tolist() != [-1]:
            raise UnsupportedModelError(f"{_label(node)}: the head reads a step other than "
                                        f"the last (-1); not supported")
    start = path[0].input[0] if path else head_input
    from_y_h = len(last.output) > 1 and start == last.output[1]
    head_mode = "last" if picks or from_y_h else "every"
    if head.weight.shape[1] != layers[-1].hidden_size:
        raise UnsupportedModelError(f"the head expects {head.weight.shape[1]} inputs but "
                                    f"{_label(last)} has {layers[-1].hidden_size} hidden units")
    batch_first = (node_layouts[0] == 1) != bool(swaps)
    return ModelIR(list(layers), head, head_mode, meta={"batch_first": batch_first})
