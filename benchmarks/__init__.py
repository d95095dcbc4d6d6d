"""Benchmarks: the figures deploybot promises (README, Benchmarks), measured on this machine.

Not tests: they print numbers and write benchmarks/results.json. Run with `make bench`.
"""
