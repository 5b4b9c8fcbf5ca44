"""BindVAE in JAX: transcription-factor binding signatures from accessible chromatin."""

__version__ = "0.1.0"
