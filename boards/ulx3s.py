"""Build a design folder's bitstream for the Radiona ULX3S 85F (ECP5 LFE5U-85F).

The design sits behind the UART link of docs/board_protocol.md.
Usage: python boards/ulx3s.py rtl_out/<design> [out_dir]
"""
import sys

from hwgen.cli import main

BOARD = "ulx3s"

if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1])
    sys.exit(main(["build", sys.argv[1], "--board", BOARD,
                   *(["--out", sys.argv[2]] if len(sys.argv) == 3 else [])]))
