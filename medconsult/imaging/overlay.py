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


WORSE_COLOUR = np.array([230, 40, 40], dtype=np.float32)
BETTER_COLOUR = np.array([40, 200, 90], dtype=np.float32)


def zone_layer(rgb: np.ndarray, zone_masks: dict[str, np.ndarray], changed: dict[str, float],
               alpha: float = 0.35) -> np.ndarray:
    """Tint each zone whose change is given: red where it got worse, green where better; zone edges drawn thin."""
    for name, mask in zone_masks.items():
        edge = mask & ~ndimage.binary_erosion(mask)
        rgb[edge] = 0.5 * rgb[edge] + 0.5 * 255
        if name in changed:
            colour = WORSE_COLOUR if changed[name] > 0 else BETTER_COLOUR
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
    return rgb


def write_side_by_side(panels: list[np.ndarray], path: Path, height: int = 512) -> Path:
    """RGB panels scaled to one height and placed left to right (prior first), a dark gap between them."""
    scaled = []
    for panel in panels:
        width = max(1, round(panel.shape[1] * height / panel.shape[0]))
        image = Image.fromarray(panel.clip(0, 255).astype(np.uint8)).resize((width, height), Image.Resampling.BILINEAR)
        scaled.append(np.asarray(image))
    gap = np.zeros((height, 8, 3), dtype=np.uint8)
    joined = np.concatenate([part for panel in scaled for part in (panel, gap)][:-1], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(joined).save(path)
    return path
