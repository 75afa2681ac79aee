"""Benchmarks: speed and quality figures (print, never assert timings)."""
