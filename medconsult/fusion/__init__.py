"""Intermediate fusion: encoders that project radiographs, record text and measurements into one latent space."""
