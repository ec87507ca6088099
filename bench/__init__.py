"""Benchmarks. Speed lives here, not in timed tests: ``python -m bench`` runs them all and writes
the results as Markdown under docs/benchmarks/."""
