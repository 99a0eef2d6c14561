"""Overlay PNG of the lung masks on the radiograph, for the report and the UI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

RIGHT_COLOUR = np.array([64, 160, 255], dtype=np.float32)  # patient's right lung (image left)
LEFT_COLOUR = np.array([255, 160, 64], dtype=np.float32)


def write_overlay(
    grey: np.ndarray, right: np.ndarray, left: np.ndarray, path: Path, alpha: float = 0.3
) -> Path:
    rgb = np.repeat(grey[..., None].astype(np.float32), 3, axis=2)
    for mask, colour in ((right, RIGHT_COLOUR), (left, LEFT_COLOUR)):
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
        edge = mask & ~ndimage.binary_erosion(mask, iterations=max(1, min(grey.shape) // 256))
        rgb[edge] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path)
    return path
