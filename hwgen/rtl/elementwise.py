"""Element-wise unit: gates and new state of one hidden element per cycle (pipelined).

Computes exactly `hwgen.ref.layer_step` for one element. The unit is the same for every
cell: it requantizes each gate block's accumulator to a pre-activation (round, then
saturate: +2 cycles), runs the cell's element-wise program, registers the new state, and
carries `tag` (the element's index) alongside. A new element may enter every cycle.

The program itself is the cell's (`hwgen.cells.Cell.elementwise`, in the cell's own file,
with its stage table): written against `PipelineOps`, a small vocabulary of registers,
delays, PWL units and two-stage requantization, so that a cell file holds its whole
element-wise definition and imports no HDL. Every multiplier, every sum of products, every
PWL stage and both halves of every requantization have a register after them, for Fmax.
Above 8 lanes (`mac_array.product_delay`) every multiplier has its operands registered too
(`arith.two_edge_product`): a wide design's multipliers lie far from the unit.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import registered_product as product_module
from ..cells import Cell, get_cell
from ..qmodel import QLayer
from .arith import saturate, shift_round, two_edge_product
from .pwl_unit import LATENCY as PWL_LATENCY, PWLUnit

PRE_LATENCY = 2  # accumulator -> pre-activation: round, then saturate


def product_latency(registered: bool) -> int:
    """Cycles of a gate product: its operands registered too (`registered`) or not."""
    return product_module.LATENCY if registered else 1


def latency(cell: Cell | str, registered_products: bool = False) -> int:
    """Cycles from an element entering the unit of `cell` to its new state."""
    spec = get_cell(cell) if isinstance(cell, str) else cell
    return spec.elementwise_latency(PWL_LATENCY, product_latency(registered_products))


class PipelineOps:
    """What a cell's element-wise program builds its pipeline with, inside one `Module`.

    Registers are named p0, p1, ... in the order they are made. `registered_products`: each
    `product` registers its operands as well (`product_latency`); `product_instances`: those
    products, and the PWL units', as instances of `hwgen.registered_product.MODULE` (for
    Verilog), else in Amaranth.
    """

    pwl_latency = PWL_LATENCY
    saturate = staticmethod(saturate)          # (value, fmt) -> clamped to fmt
    shift_round = staticmethod(shift_round)    # (value, shift) -> rounded half up

    def __init__(self, m: Module, registered_products: bool = False,
                 product_instances: bool = False):
        self.m = m
        self.registered_products = registered_products
        self.product_latency = product_latency(registered_products)
        self.product_instances = registered_products and product_instances
        self._names = iter(range(10_000))

    def reg(self, value, fmt=None):
        """One pipeline register holding `value` (shape: signed(fmt.width) or the value's)."""
        shape = signed(fmt.width) if fmt is not None else value.shape()
        r = Signal(shape, name=f"p{next(self._names)}")
        self.m.d.sync += r.eq(value)
        return r

    def product(self, a, b):
        """a * b (both signed), registered: `product_latency` cycles later."""
        if not self.registered_products:
            return self.reg(a * b)
        assert a.shape().signed and b.shape().signed
        p = Signal(signed(len(a) + len(b)), name=f"p{next(self._names)}")
        two_edge_product(self.m, p, a, b, instance=self.product_instances)
        return p

    @staticmethod
    def relu(value):
        """max(value, 0): a sign test and a mux (combinational; register it after)."""
        return Mux(value.as_signed() < 0, 0, value.as_signed())

    def delay(self, value, n: int):
        """`value` through `n` registers."""
        for _ in range(n):
            value = self.reg(value)
        return value

    def pwl(self, name: str, table, x):
        """A PWL unit (submodule `name`) evaluating `table` at `x`; the result is
        `pwl_latency` cycles later."""
        unit = PWLUnit(table, product_instance=self.product_instances)
        self.m.submodules[name] = unit
        self.m.d.comb += unit.x.eq(x)
        return unit.y

    def rq(self, value, from_frac: int, fmt):
        """Requantize in two registered halves: round, then saturate."""
        return self.reg(saturate(self.reg(shift_round(value, from_frac - fmt.frac)), fmt),
                        fmt)


class ElementwiseUnit(wiring.Component):
    """Pipelined gates and state update for `layer`.

    Members
    -------
    valid_in : In(1)     acc0.., h_prev, c_prev and tag are valid this cycle
    acc0..acc<B-1> : In(signed(acc_width))   the element's accumulators, one per gate block
        of the cell, in block order
    h_prev, c_prev : In  previous state (c_prev is unused by a cell without a cell state)
    vec_<name> : In(signed(v_fmt.width))  each of the cell's element-wise vectors
        (`Cell.vectors`) at this element, entering with the state
    valid_out : Out(1)   h_new, c_new, tag_out are valid this cycle (`latency` cycles later)

    `registered_products`: the gate products with their operands registered (above 8
    lanes: `PipelineOps`); `product_instances`: those and the PWL units' products as
    instances of `hwgen.registered_product.MODULE` (for Verilog).
    """

    def __init__(self, layer: QLayer, acc_width: int, tag_width: int = 8,
                 registered_products: bool = False, product_instances: bool = False):
        self.layer = layer
        self.registered_products = registered_products
        self.product_instances = product_instances
        self.cell = layer.spec
        self.latency = latency(self.cell, registered_products)
        c_width = layer.c_fmt.width if layer.c_fmt else 1
        members = {"valid_in": In(1), "valid_out": Out(1),
                   "tag": In(unsigned(tag_width)), "tag_out": Out(unsigned(tag_width)),
                   "h_prev": In(signed(layer.h_fmt.width)), "c_prev": In(signed(c_width)),
                   "h_new": Out(signed(layer.h_fmt.width)), "c_new": Out(signed(c_width))}
        for q in range(self.cell.n_blocks):
            members[f"acc{q}"] = In(signed(acc_width))
        for name in self.cell.vectors:  # element-wise parameters, entering with the state
            members[f"vec_{name}"] = In(signed(layer.v_fmt.width))
        super().__init__(members)

    def elaborate(self, platform):
        L, cell = self.layer, self.cell
        m = Module()
        ops = PipelineOps(m, self.registered_products, self.product_instances)
        m.d.comb += [self.valid_out.eq(ops.delay(self.valid_in, self.latency)),
                     self.tag_out.eq(ops.delay(self.tag, self.latency))]
        pre = [ops.rq(getattr(self, f"acc{q}"), L.acc_frac, L.block_fmt(name))
               for q, name in enumerate(cell.block_names)]                   # +PRE_LATENCY
        state_in = {name: getattr(self, f"{name}_prev") for name in cell.state}
        state_in.update({name: getattr(self, f"vec_{name}") for name in cell.vectors})
        state_out = cell.elementwise(ops, L, pre, state_in)
        m.d.sync += [getattr(self, f"{name}_new").eq(state_out[name]) for name in cell.state]
        return m
