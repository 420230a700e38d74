"""Amaranth hardware generator: the column-serial, row-parallel recurrent accelerator."""
