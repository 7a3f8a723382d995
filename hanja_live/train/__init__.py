"""Offline model pipeline: synthetic data, training, evaluation, export (modern Python, may use torch)."""
