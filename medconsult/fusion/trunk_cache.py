"""The frozen trunk's output for every training radiograph, computed once and kept on disk.

Training adapts only the encoder's tail, so the ImageNet trunk's activations (float16) and the plain ImageNet
features (for the frozen baseline) are what training reads. The cache file is keyed by the images' names and
sizes and by where the trunk ends: a changed data folder or encoder recomputes it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medconsult.fusion.image_encoder import (
    CACHED_DEPTH,
    INPUT_SIZE,
    RadiographEncoder,
    as_grey,
    to_input_pixels,
)
from medconsult.imaging.io import read_radiograph


@dataclass(frozen=True)
class TrunkOutputs:
    activations: np.ndarray  # float16 (N, 192, 7, 7): the input of the adapted tail
    imagenet_features: np.ndarray  # float32 (N, 1280): the unadapted network's pooled features


def input_pixels(path: Path) -> np.ndarray:
    return to_input_pixels(read_radiograph(path).pixels)


def trunk_outputs(
    files: list[Path], cache_file: Path, *, batch_size: int = 32, log: Callable[[str], None] = print
) -> TrunkOutputs:
    key = _key(files)
    if cache_file.is_file():
        with np.load(cache_file) as cached:
            if str(cached["key"]) == key:
                return TrunkOutputs(cached["activations"], cached["imagenet_features"])
    encoder = RadiographEncoder(classes=1).eval()
    activations, features = [], []
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(files), batch_size):
            pixels = torch.from_numpy(
                np.stack([input_pixels(path) for path in files[start : start + batch_size]])
            )
            trunk = encoder.trunk(as_grey(pixels))
            activations.append(trunk.half().numpy())
            features.append(encoder.tail(trunk).numpy())
            if start // batch_size % 20 == 0:
                log(
                    f"trunk: {start + len(pixels)}/{len(files)} images, {time.perf_counter() - started:.0f} s"
                )
    outputs = TrunkOutputs(np.concatenate(activations), np.concatenate(features))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_suffix(".partial.npz")
    np.savez(partial, key=key, activations=outputs.activations, imagenet_features=outputs.imagenet_features)
    partial.replace(cache_file)
    return outputs


def _key(files: list[Path]) -> str:
    """The images and what the cached values depend on besides them (where the trunk ends, the input size)."""
    digest = hashlib.sha256(f"depth {CACHED_DEPTH}, input {INPUT_SIZE}\n".encode())
    for path in files:
        digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()
