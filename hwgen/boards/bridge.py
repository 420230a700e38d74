"""The board's logic: UART bytes in, the design's streams, UART bytes out.

Framing (docs/board_protocol.md): each input element is ``ceil((in_width + 2) / 8)`` bytes,
little-endian, holding the ``i__payload`` bits (data, ``step_end``, ``seq_end``); each
output element comes back as ``ceil((out_width + 1) / 8)`` bytes of ``o__payload``
(data, ``last``). Received bytes wait in a FIFO of ``fifo_depth`` bytes while the design
computes; the design's output stream is stalled while the transmitter is busy. A break on
the line (low for 16 bit times or more) resets the design and the link. A design whose
weights load (a ``weights`` stream) takes the received bytes as its weight image for as
long as that stream is ready (from reset until the image's last byte), a byte a beat.
"""

from amaranth.hdl import ClockSignal, Instance, Module, Mux, ResetInserter, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..interface import input_payload, output_payload
from .uart import BreakDetector, UARTRx, UARTTx


class UARTBridge(wiring.Component):
    """A design folder's core behind a UART link.

    Parameters
    ----------
    design : a :class:`hwgen.synth.Design` (its Verilog top is instantiated by name; the
        Verilog must be added to the build or the simulation separately).
    divisor : clock cycles per UART bit.
    fifo_depth : bytes the receive FIFO holds.

    Members
    -------
    rx : In(1)
        UART line from the host.
    tx : Out(1)
        UART line to the host.
    overrun : Out(1)
        Sticky until a break: a received byte was lost because the receive FIFO was full.
    frame_error : Out(1)
        Sticky until a break: a byte arrived with a low stop bit.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    overrun: Out(1)
    frame_error: Out(1)

    def __init__(self, design, divisor: int, fifo_depth: int = 512):
        self.design = design
        self.divisor = divisor
        self.fifo_depth = fifo_depth
        self.in_bytes = input_payload(design.in_width).bytes
        self.out_bytes = output_payload(design.out_width).bytes
        super().__init__()

    def elaborate(self, platform):
        top = Module()
        top.submodules.brk = brk = BreakDetector(self.divisor)
        top.d.comb += brk.rx.eq(self.rx)
        # The domain's own reset, where it has one (ECP5 platforms run reset-less and rely
        # on the initial values), or a line break.
        rst = ResetSignal(allow_reset_less=True) | brk.brk
        top.submodules.link = ResetInserter(brk.brk)(self._link(rst))
        return top

    def _link(self, rst):
        d = self.design
        m = Module()
        m.submodules.urx = urx = UARTRx(self.divisor)
        m.submodules.utx = utx = UARTTx(self.divisor)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     fifo.w_data.eq(urx.data), fifo.w_en.eq(urx.stb)]
        with m.If(urx.stb & ~fifo.w_rdy):
            m.d.sync += self.overrun.eq(1)
        with m.If(urx.frame_error):
            m.d.sync += self.frame_error.eq(1)

        # Bytes -> input elements, least significant byte first.
        i_shift = Signal(8 * self.in_bytes)
        i_count = Signal(range(self.in_bytes))
        i_valid, i_ready = Signal(), Signal()
        # the core's weight stream first, while it takes bytes (weights="load")
        w_ready = Signal()
        m.d.comb += fifo.r_en.eq(Mux(w_ready, 1, ~i_valid))
        with m.If(fifo.r_rdy & ~i_valid & ~w_ready):
            m.d.sync += i_shift.eq(i_shift[8:] | (fifo.r_data << (8 * (self.in_bytes - 1))))
            with m.If(i_count == self.in_bytes - 1):
                m.d.sync += [i_count.eq(0), i_valid.eq(1)]
            with m.Else():
                m.d.sync += i_count.eq(i_count + 1)
        with m.If(i_valid & i_ready):
            m.d.sync += i_valid.eq(0)

        # Output elements -> bytes, least significant byte first.
        o_payload = Signal(d.out_payload_bits)
        o_valid = Signal()
        o_shift = Signal(8 * self.out_bytes)
        o_left = Signal(range(self.out_bytes + 1))
        o_ready = o_left == 0
        with m.If(o_valid & o_ready):
            m.d.sync += [o_shift.eq(o_payload), o_left.eq(self.out_bytes)]
        m.d.comb += [utx.i.valid.eq(o_left != 0), utx.i.payload.eq(o_shift[:8])]
        with m.If(utx.i.valid & utx.i.ready):
            m.d.sync += [o_shift.eq(o_shift >> 8), o_left.eq(o_left - 1)]

        iface = d.manifest["interface"]
        weights = {}
        if d.weight_beat_bits:
            weights = dict(i_weights__payload=fifo.r_data, i_weights__valid=fifo.r_rdy,
                           o_weights__ready=w_ready)
        m.submodules.core = Instance(
            d.top,
            ("i", iface.get("clock", "clk"), ClockSignal()),
            ("i", iface.get("reset", "rst"), rst),
            i_i__payload=i_shift[:d.in_payload_bits], i_i__valid=i_valid, o_i__ready=i_ready,
            o_o__payload=o_payload, o_o__valid=o_valid, i_o__ready=o_ready, **weights,
        )
        return m
