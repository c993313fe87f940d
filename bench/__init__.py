"""Benchmarks: the engine's own overhead next to raw httpx and the libraries people use (see README.md)."""
