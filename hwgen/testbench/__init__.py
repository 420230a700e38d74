"""The cocotb testbenches, shipped with the package so that an installed hwgen can simulate.

``test_accelerator`` checks any generated design against its vectors (run by
`hwgen.sim.simulate`); ``cocotb_board_uart`` checks a design behind the board's UART link.
The repository's ``sim/`` points here.
"""
