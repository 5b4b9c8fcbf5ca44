"""Tests of bindvae.features."""
