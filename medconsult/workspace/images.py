"""The radiograph and its lung masks as two layers the page stacks, so the clinician can toggle the overlay and
set its opacity. Rendered once per segmentation into the case's folder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medconsult.imaging.io import ImageLoadError, read_radiograph
from medconsult.imaging.overlay import LEFT_COLOUR, RIGHT_COLOUR
from medconsult.workspace.evidence import inside

MASK_ALPHA = 200  # the page's opacity slider scales this


def overlay_layer(result: dict[str, Any], layer: str, case_dir: Path) -> Path | None:
    """`radiograph`: the segmented image as greyscale PNG; `lungs`: the masks, coloured, transparent elsewhere.
    Only masks the consult wrote inside the case's folder are read; None when a file is missing."""
    digest = hashlib.sha256(f"{result['image']}|{result['right_mask_png']}".encode()).hexdigest()[:12]
    target = case_dir / "workspace" / f"{digest}-{layer}.png"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if layer == "radiograph":
        try:
            grey = read_radiograph(Path(result["image"])).to_uint8()
        except (ImageLoadError, OSError):
            return None
        Image.fromarray(grey).save(target)
        return target
    masks = [inside(case_dir, result[key]) for key in ("right_mask_png", "left_mask_png")]
    if None in masks:
        return None
    right, left = (np.asarray(Image.open(path).convert("L")) > 127 for path in masks)
    rgba = np.zeros((*right.shape, 4), dtype=np.uint8)
    for mask, colour in ((right, RIGHT_COLOUR), (left, LEFT_COLOUR)):
        rgba[mask, :3] = colour.astype(np.uint8)
        rgba[mask, 3] = MASK_ALPHA
    Image.fromarray(rgba, mode="RGBA").save(target)
    return target
