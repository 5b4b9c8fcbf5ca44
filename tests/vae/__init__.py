"""Tests of bindvae.vae."""
