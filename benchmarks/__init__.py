"""Benchmarks: ``python -m benchmarks NAME`` (see benchmarks/__main__.py for the names)."""
