"""Tests of bindvae.data."""
