"""Datasets: specs, cameras, readers."""
