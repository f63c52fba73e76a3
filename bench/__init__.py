"""Benchmarks: each script prints its figures and the ratio to its baseline or target."""
