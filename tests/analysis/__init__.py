"""Tests of bindvae.analysis."""
