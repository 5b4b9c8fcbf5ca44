"""Tests of bindvae.training."""
