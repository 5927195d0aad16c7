"""Helpers for the test suite and benchmarks, not for users: MLTK's compiled frontend as an
oracle, and readers that turn exported artifacts back into what they were made from.

The library never imports this package (tests/check_layers.py keeps it so).
"""
