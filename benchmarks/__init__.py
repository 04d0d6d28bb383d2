"""Benchmarks: scripts that print figures side by side; never asserted in tests."""
