"""Reconstruction, codebook, Fréchet-distance and kernel (KID, ``metrics.kid``) metrics."""
