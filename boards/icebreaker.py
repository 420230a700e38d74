"""Build a design folder's bitstream for the 1BitSquared iCEBreaker (iCE40UP5K).

The design sits behind the UART link of docs/board_protocol.md.
Usage: python boards/icebreaker.py rtl_out/<design> [out_dir]
"""
import sys

from hwgen.cli import main

BOARD = "icebreaker"

if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1])
    sys.exit(main(["build", sys.argv[1], "--board", BOARD,
                   *(["--out", sys.argv[2]] if len(sys.argv) == 3 else [])]))
