"""Runtimes wire the core to a backend: ``embedded`` (SQLite, threads) and ``aws_lambda``."""
