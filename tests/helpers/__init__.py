"""Helpers shared by tests in several folders (small models, planted data sets, training configs)."""
