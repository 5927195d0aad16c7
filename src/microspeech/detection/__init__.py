"""Streaming keyword detection: the detector firmware runs, and its parameters."""
