"""Benchmarks: each script prints a table; run with `.venv/bin/python -m bench.<name>`."""
