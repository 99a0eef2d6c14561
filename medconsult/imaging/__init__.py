"""Imaging perception: radiograph decoding, lung segmentation (MONAI), radiomics (pyradiomics)."""
