"""Boards: a design folder behind a UART link, as a bitstream for a real board.

See ``docs/board_protocol.md`` for the byte framing and ``hwgen.host`` for the host side.
"""
from .bridge import UARTBridge
from .build import (BOARDS, DEFAULT_BAUD, Board, BoardError, BoardTop, build_bitstream,
                    format_build, get_board, uart_divisor)
from .uart import UARTRx, UARTTx

__all__ = ["BOARDS", "Board", "BoardError", "BoardTop", "DEFAULT_BAUD", "UARTBridge", "UARTRx",
           "UARTTx", "build_bitstream", "format_build", "get_board",
           "uart_divisor"]
