"""Tests of the entry points in experiments/ (command lines, Hydra configs, launchers)."""
