"""Benchmarks that drive the real pipeline (`skyhive bench ...`)."""
