"""Lung segmentation with a MONAI network packaged as a bundle.

A bundle is a folder laid out like a MONAI bundle:

    configs/metadata.json    intended use, inputs, outputs, preprocessing, training data and licences, selection
    configs/inference.json   `network_def` (the network, as MONAI's ConfigParser instantiates it), `spatial_size`,
                             `threshold`, `mirror_averaging` and `models` (the state dicts of models/ whose logits
                             are averaged, default ["model.pt"]): what inference does, as values
    configs/cross_validation.json  the cross-validation of the procedure that trained it (`medconsult seg cv --record`)
    models/model.pt          the state dict (model_1.pt ... for the further networks of an ensemble)
    docs/README.md           the model card

Any bundle whose network maps one normalised greyscale channel at `spatial_size` to one lung-logit channel can be
selected with `MEDCONSULT_SEG_BUNDLE`, without code changes.

Sides are anatomical: on a frontal radiograph displayed in the standard orientation the patient's right lung is on
the image's left, so the component with the smaller x centroid is the right lung.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # the usual name
from scipy import ndimage

from medconsult.imaging.io import normalise

DEFAULT_BUNDLE = Path(__file__).parent / "bundles" / "lung_unet"


class NoLungsFound(ValueError):
    """The model found no plausible pair of lung fields: the image is probably not a frontal chest radiograph."""


class ImageTooSmall(ValueError):
    """An image smaller than the network's input: a thumbnail (the Kermany set's squashed 224-px images, for one).
    The network only ever saw radiographs scaled down to its input (short sides of 378 px and more), and on such
    thumbnails it drew lungs of the wrong shape, whose areas read as a 10-fold asymmetry."""


# Below this mirror agreement a result is suspect: a candidate warning the cross-validation counts (seg_cv).
MIRROR_AGREEMENT_FLOOR = 0.90


@dataclass
class LungMasks:
    right: np.ndarray  # bool, image size; the patient's right lung (image left)
    left: np.ndarray
    probability: np.ndarray  # float32, image size
    # Dice between the masks the network draws on the film and on its mirror image (mirrored back); None when
    # inference does not mirror. Recorded by the cross-validation, not (yet) a warning: on one fold's networks it was
    # below 0.90 for 7 of 11 poor results, but so it was on 31% of 80 Hannover films with the 1.0 bundle.
    mirror_agreement: float | None = None

    @property
    def lungs(self) -> np.ndarray:
        return self.right | self.left

    def quality_warnings(self) -> list[str]:
        """Signs that the masks may not be two lungs. Not refusals: a white-out lung looks the same to these checks,
        so the reader is told to check the overlay instead.

        Thresholds from this model on 261 real radiographs (Hannover and ieee8023): mean lung probability had its
        5th percentile at 0.94 and the smaller/larger lung area ratio at 0.50; ten of them had lung shares of 0.23-0.39.
        """
        warnings = []
        confidence = float(self.probability[self.lungs].mean())
        if confidence < 0.9:
            warnings.append(f"low segmentation confidence (mean lung probability {confidence:.2f})")
        sizes = sorted((int(self.right.sum()), int(self.left.sum())))
        if sizes[0] < 0.35 * sizes[1]:
            warnings.append(
                f"one lung field is {sizes[0] / sizes[1]:.0%} of the other's area: an opacified or collapsed lung, "
                "or a failed segmentation"
            )
        fraction = float(self.lungs.mean())
        if not 0.12 <= fraction <= 0.55:
            warnings.append(f"lungs cover {fraction:.0%} of the image, outside the usual 12-55%")
        return warnings


def content_box(pixels: np.ndarray, tolerance: float = 0.01, share: float = 0.98) -> tuple[slice, slice]:
    """The rows and columns of the film itself: uniform black or white bands at the edges (a figure's letterboxing, a
    scanned film's frame) are left out, so that the lungs fill the network's input as they did in training. Without
    this a film framed in a third of black (one of the external check's images) got no lungs at all."""
    low, high = float(pixels.min()), float(pixels.max())
    everything = (slice(0, pixels.shape[0]), slice(0, pixels.shape[1]))
    if high <= low:
        return everything
    band = (pixels <= low + tolerance * (high - low)) | (pixels >= high - tolerance * (high - low))
    rows, columns = np.nonzero(band.mean(axis=1) < share)[0], np.nonzero(band.mean(axis=0) < share)[0]
    if not len(rows) or not len(columns):
        return everything
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def to_network_input(pixels: np.ndarray, size: int) -> torch.Tensor:
    tensor = torch.from_numpy(normalise(pixels))[None, None]
    return F.interpolate(tensor, size=(size, size), mode="area")


# MONAI's ConfigParser instantiates any importable class a `_target_` names and evaluates "$" strings as Python: a
# bundle from elsewhere (MEDCONSULT_SEG_BUNDLE) may only name these networks, with plain values as arguments.
ALLOWED_TARGETS = frozenset({
    "monai.networks.nets.UNet", "monai.networks.nets.BasicUNet", "monai.networks.nets.AttentionUnet",
    "monai.networks.nets.SegResNet", "monai.networks.nets.DynUNet", "monai.networks.nets.FlexibleUNet",
})


class BundleRejected(ValueError):
    """A segmentation bundle whose configuration could run code other than building an allowed network."""


def check_inference_config(config: object, where: str = "inference.json") -> None:
    """Refuse anything in the configuration that is not a plain value or an allowed network's `_target_`."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "_target_":
                if value not in ALLOWED_TARGETS:
                    raise BundleRejected(f"{where}: _target_ {value!r} is not an allowed network")
            elif str(key).startswith("_"):
                raise BundleRejected(f"{where}: the key {key!r} is not allowed (only _target_ is)")
            else:
                check_inference_config(value, f"{where}/{key}")
    elif isinstance(config, list):
        for index, value in enumerate(config):
            check_inference_config(value, f"{where}/{index}")
    elif isinstance(config, str) and config[:1] in ("$", "@", "%"):
        raise BundleRejected(f"{where}: {config[:40]!r} is an expression or a reference, not a plain value")


class LungSegmenter:
    def __init__(self, bundle: Path):
        from monai.bundle import ConfigParser

        self.bundle = Path(bundle)
        self.metadata = json.loads((self.bundle / "configs" / "metadata.json").read_text())
        inference = json.loads((self.bundle / "configs" / "inference.json").read_text())
        check_inference_config(inference)  # before MONAI sees it
        parser = ConfigParser()
        parser.read_config(self.bundle / "configs" / "inference.json")
        self.networks = [self._load(parser, name) for name in inference.get("models", ["model.pt"])]
        self.input_size = int(parser.get_parsed_content("spatial_size"))
        self.threshold = float(parser.get_parsed_content("threshold"))
        self.mirror = bool(parser.get_parsed_content("mirror_averaging"))
        self.zoom_out = [float(margin) for margin in inference.get("zoom_out_margins", [0.0])]

    def _load(self, parser, name: str) -> torch.nn.Module:
        if Path(name).name != name:
            raise BundleRejected(f"inference.json: model {name!r} is not a file name in the bundle's models/")
        network = parser.get_parsed_content("network_def", instantiate=True, lazy=False)
        state = torch.load(self.bundle / "models" / name, map_location="cpu", weights_only=True)
        network.load_state_dict({k: v.float() for k, v in state.items()})
        return network.eval()

    def probability(self, pixels: np.ndarray, box: tuple[slice, slice] | None = None) -> np.ndarray:
        """Lung probability at the image's own size (0 on the bands content_box leaves out)."""
        return self.predict(pixels, box)[0]

    @torch.no_grad()
    def predict(self, pixels: np.ndarray, box: tuple[slice, slice] | None = None) -> tuple[np.ndarray, float | None]:
        """The lung probability at the image's own size, and the mirror agreement (LungMasks.mirror_agreement).

        Logits are averaged over the ensemble's networks, over the film and its mirror image (lungs are near-symmetric
        and the average steadies the edges), and over the bundle's zoom-out views (`zoom_out_margins`: the film
        shrunk inside a border of its own edge pixels, a share of its side wide, so the network also sees the lungs
        smaller than it was trained on; on hazy films it then stopped at the diaphragm more often)."""
        box = box or content_box(pixels)
        film = pixels[box]
        image = to_network_input(film, self.input_size)
        views = [self._view_logits(image, margin) for margin in self.zoom_out]
        logits = torch.stack([view for view, _ in views]).mean(dim=0)
        logits = F.interpolate(logits, size=film.shape, mode="bilinear", align_corners=False)
        probability = np.zeros(pixels.shape, dtype=np.float32)
        probability[box] = torch.sigmoid(logits)[0, 0].numpy()
        return probability, views[0][1]

    def _view_logits(self, image: torch.Tensor, margin: float) -> tuple[torch.Tensor, float | None]:
        """The logits of one zoom-out view, at the input's size and place, with its mirror agreement."""
        size = image.shape[-1]
        pad = round(margin * size)
        view = image
        if pad:
            view = F.interpolate(F.pad(image, [pad] * 4, mode="replicate"), size=(size, size), mode="area")
        agreement = None
        if self.mirror:  # the film and its mirror image in one batch
            both = self._ensemble(torch.cat([view, torch.flip(view, dims=[3])]))
            logits, mirrored = both[:1], torch.flip(both[1:], dims=[3])
            agreement = _dice(logits > 0, mirrored > 0)
            logits = (logits + mirrored) / 2
        else:
            logits = self._ensemble(view)
        if pad:
            grown = F.interpolate(logits, size=(size + 2 * pad, size + 2 * pad), mode="bilinear", align_corners=False)
            logits = grown[..., pad : pad + size, pad : pad + size]
        return logits, agreement

    def _ensemble(self, image: torch.Tensor) -> torch.Tensor:
        return torch.stack([network(image) for network in self.networks]).mean(dim=0)

    def segment(self, pixels: np.ndarray) -> LungMasks:
        box = content_box(pixels)
        height, width = pixels[box].shape[:2]
        if min(height, width) < self.input_size:
            raise ImageTooSmall(
                f"{width}x{height} px{'' if pixels[box].shape == pixels.shape else ' (without its frame)'} "
                "is too small for the lung segmentation (it needs a short side of at least "
                f"{self.input_size} px, its network's input): no lung areas or radiomics for this image"
            )
        probability, agreement = self.predict(pixels, box)
        right, left = split_lungs(probability > self.threshold)
        return LungMasks(right=right, left=left, probability=probability, mirror_agreement=agreement)


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    total = int(a.sum() + b.sum())
    return 2 * int((a & b).sum()) / total if total else 1.0


@cache
def load_segmenter(bundle: str | None = None) -> LungSegmenter:
    return LungSegmenter(Path(bundle) if bundle else DEFAULT_BUNDLE)


def split_lungs(mask: np.ndarray, min_fraction: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The two largest connected components, holes filled, as (right lung, left lung) in patient terms.

    Lungs that touch (over the mediastinum or below the heart) form one component; when that component has a waist
    (a column in its middle half with under half the typical column's lung pixels) it is cut there. A blob without
    a waist is not two lungs.
    """
    labels, count = ndimage.label(mask)
    sizes = ndimage.sum(mask, labels, index=range(1, count + 1)) if count else np.array([])
    if count == 1 or (count >= 2 and np.sort(sizes)[-2] < min_fraction * mask.size):
        mask = _cut_at_midline(labels == int(np.argmax(sizes)) + 1)
        labels, count = ndimage.label(mask)
        sizes = ndimage.sum(mask, labels, index=range(1, count + 1)) if count else np.array([])
    if count < 2:
        raise NoLungsFound(f"{count} lung region(s) found; a frontal chest radiograph shows two")
    largest = np.argsort(sizes)[::-1][:2] + 1
    if sizes[largest[1] - 1] < min_fraction * mask.size:
        raise NoLungsFound(
            f"second lung region covers {100 * sizes[largest[1] - 1] / mask.size:.1f}% of the image; "
            "a frontal chest radiograph shows two lung fields"
        )
    components = [ndimage.binary_fill_holes(labels == index) for index in largest]
    components.sort(key=lambda component: np.nonzero(component)[1].mean())  # by x centroid
    return components[0], components[1]


def _cut_at_midline(component: np.ndarray) -> np.ndarray:
    columns = np.nonzero(component.any(axis=0))[0]
    left, right = columns.min(), columns.max()
    start, end = left + (right - left) // 4, right - (right - left) // 4
    if end <= start:
        return component
    counts = component.sum(axis=0)
    cut = start + int(np.argmin(counts[start:end]))
    if counts[cut] >= 0.5 * np.median(counts[left : right + 1]):
        return component  # no waist: one region, not two touching lungs
    separated = component.copy()
    separated[:, cut] = False
    return separated
