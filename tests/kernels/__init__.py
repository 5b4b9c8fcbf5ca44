"""Tests of bindvae.kernels."""
