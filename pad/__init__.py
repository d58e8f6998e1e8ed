"""PAD: Pre-train, Align, and Disentangle (SIGIR 2025) as a reproducible DVC pipeline."""

__version__ = "0.1.0"
