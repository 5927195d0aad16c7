"""Evaluation: metrics, plots, clip and streaming evaluation."""
