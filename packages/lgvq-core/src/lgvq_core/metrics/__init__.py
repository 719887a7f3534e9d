"""Reconstruction, codebook and Fréchet-distance metrics."""
