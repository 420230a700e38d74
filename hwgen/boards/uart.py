"""A UART (8 data bits, no parity, 1 stop bit, LSB first) in Amaranth.

Amaranth 0.5's standard library has no UART, so this is a small one. ``divisor`` is the
number of clock cycles per bit (``clock_hz / baud`` rounded).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out


def _check_divisor(divisor) -> None:
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"Divisor must be an integer of at least 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """UART receiver.

    The line is synchronised, a start bit is confirmed at its middle, and each data bit is
    sampled at its middle. A byte whose stop bit is low is dropped and flagged.

    Parameters
    ----------
    divisor : clock cycles per bit (at least 4).

    Members
    -------
    rx : In(1)
        The serial line (idle high).
    data : Out(8)
        The last byte received; valid in the cycle ``stb`` is high.
    stb : Out(1)
        High for one cycle per received byte. The byte is not held: a consumer that is
        not ready in that cycle loses it.
    frame_error : Out(1)
        High for one cycle when a stop bit is low.
    """

    rx: In(1, init=1)
    data: Out(8)
    stb: Out(1)
    frame_error: Out(1)

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(self.divisor))
        bits = Signal(range(8))
        shreg = Signal(8)
        tick = timer == 0
        with m.If(~tick):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(tick & line):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Elif(tick):
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += [timer.eq(self.divisor - 1), shreg.eq(Cat(shreg[1:], line)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(tick):
                    m.d.comb += [self.stb.eq(line), self.frame_error.eq(~line)]
                    m.next = "IDLE"
        m.d.comb += self.data.eq(shreg)
        return m


class UARTTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor : clock cycles per bit (at least 4).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; one is taken when the transmitter is idle.
    tx : Out(1)
        The serial line (idle high).
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        left = Signal(range(10))  # bits still to put on the line after the current one
        shreg = Signal(9)  # data bits then the stop bit
        busy = Signal()
        m.d.comb += self.i.ready.eq(~busy)
        with m.If(self.i.valid & ~busy):
            m.d.sync += [self.tx.eq(0), shreg.eq(Cat(self.i.payload, 1)), left.eq(9),
                         timer.eq(self.divisor - 1), busy.eq(1)]
        with m.Elif(busy):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Elif(left != 0):
                m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg[1:]), left.eq(left - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += busy.eq(0)
        return m


class BreakDetector(wiring.Component):
    """Detects a line break: the line held low far longer than any byte can.

    ``brk`` rises after ``low_bits`` bit times of low line (a byte is low for at most 9)
    and falls after the line has been high again for ``high_bits`` bit times, so whatever
    it resets comes out of reset on an idle line.

    Parameters
    ----------
    divisor : clock cycles per bit.
    low_bits, high_bits : bit times of low line to enter, of high line to leave the break.

    Members
    -------
    rx : In(1)
    brk : Out(1)
    """

    rx: In(1, init=1)
    brk: Out(1)

    def __init__(self, divisor: int, low_bits: int = 16, high_bits: int = 12):
        _check_divisor(divisor)
        self.low_cycles, self.high_cycles = low_bits * divisor, high_bits * divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        count = Signal(range(max(self.low_cycles, self.high_cycles) + 1))
        # Count while the line is at the level that would change the state.
        changing = Mux(self.brk, line, ~line)
        limit = Mux(self.brk, self.high_cycles, self.low_cycles)
        with m.If(~changing):
            m.d.sync += count.eq(0)
        with m.Elif(count == limit):
            m.d.sync += [count.eq(0), self.brk.eq(~self.brk)]
        with m.Else():
            m.d.sync += count.eq(count + 1)
        return m
