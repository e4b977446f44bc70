"""Thin runners: each reads its stage's inputs, calls the pure stage functions, writes outputs atomically."""
