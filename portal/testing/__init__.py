"""Helpers for tests and benchmarks that run RollCall's real processes (no Django imports here)."""
