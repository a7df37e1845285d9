"""Benchmarks: the engine, one whole district, and tasks under the real scheduler."""
