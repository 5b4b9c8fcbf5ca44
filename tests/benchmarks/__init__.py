"""Tests of benchmarks/ (the recovery benchmark)."""
