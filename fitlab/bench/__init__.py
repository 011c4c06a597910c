"""Benchmarks: ``python -m fitlab bench NAME``; each prints a table and takes ``--json``."""
