"""Trusted reference implementations of the course exercises, verified against independent oracles in tests/."""
