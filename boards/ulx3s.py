"""Build a design folder's bitstream for the Radiona ULX3S 85F (ECP5 LFE5U-85F).

The design sits behind the UART link of docs/board_protocol.md.
Usage: python boards/ulx3s.py rtl_out/<design> [out_dir]
"""
import sys

from hwgen.synth.cli_support import build_command

BOARD = "ulx3s"

if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1])
    sys.exit(build_command(sys.argv[1], BOARD, *sys.argv[2:]))
