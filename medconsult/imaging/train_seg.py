"""Training and evaluating the lung-segmentation bundle on seg_lung_v7_ccby (CPU, deterministic, fixed seed).

The 68 image/mask pairs are split by patient (the manifest's `group`), never by image, so validation Dice is
measured on patients the network has not seen. Mask value 127 marks devices and markup: those pixels count
neither in the loss nor in the Dice. Dice is measured at the mask's own resolution after the same
post-processing as inference (two largest components, holes filled).
"""

from __future__ import annotations

import csv
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from medconsult.imaging.segmentation import (
    LungMasks,
    LungSegmenter,
    NoLungsFound,
    split_lungs,
    to_network_input,
)

IGNORE = 127


@dataclass(frozen=True)
class TrainConfig:
    input_size: int = 256
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    res_units: int = 2
    epochs: int = 120
    batch_size: int = 8
    learning_rate: float = 2e-3
    validation_fraction: float = 0.2
    seed: int = 20261127
    threads: int = 2
    device: str = "cpu"  # the deliverable is trained on the CPU; "cuda" only speeds up experiments


@dataclass
class Pair:
    name: str
    group: str
    image: np.ndarray  # float32 greyscale as stored
    mask: np.ndarray  # uint8: 0 background, 255 lung, 127 ignore


def load_pairs(data_dir: Path) -> list[Pair]:
    with open(data_dir / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Pair(
            name=Path(row["image"]).stem,
            group=row["group"],
            image=np.asarray(Image.open(data_dir / row["image"]).convert("L"), dtype=np.float32),
            mask=np.asarray(Image.open(data_dir / row["mask"]).convert("L"), dtype=np.uint8),
        )
        for row in rows
    ]


def split_by_patient(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    groups = sorted({p.group for p in pairs})
    random.Random(seed).shuffle(groups)
    validation_groups = set(groups[: max(1, round(fraction * len(groups)))])
    return [p for p in pairs if p.group not in validation_groups], [
        p for p in pairs if p.group in validation_groups
    ]


def network_definition(config: TrainConfig) -> dict:
    return {
        "_target_": "monai.networks.nets.UNet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 1,
        "channels": list(config.channels),
        "strides": [2] * (len(config.channels) - 1),
        "num_res_units": config.res_units,
    }


def _tensors(pairs: list[Pair], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.cat([to_network_input(p.image, size) for p in pairs])
    masks = []
    for p in pairs:
        label = np.where(p.mask == IGNORE, 2, (p.mask > IGNORE).astype(np.uint8))  # 0 bg, 1 lung, 2 ignore
        masks.append(
            F.interpolate(torch.from_numpy(label)[None, None].float(), size=(size, size), mode="nearest")
        )
    return images, torch.cat(masks)


def _augment(
    images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random affine (rotation ±10°, scale 0.85-1.15, shift ±8%), gamma and contrast; labels follow the geometry."""
    n = images.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * (20 * np.pi / 180)
    scale = 0.85 + 0.3 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.16
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    labels = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    gamma = torch.exp((torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.8)
    contrast = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator)
    images = ((images.clamp(0, 1) ** gamma - 0.5) * contrast + 0.5).clamp(0, 1)
    return images, labels


def masked_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice over the pixels that are not marked ignore."""
    valid = (labels != 2).float()
    target = (labels == 1).float()
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * valid).sum() / valid.sum()
    probability = torch.sigmoid(logits) * valid
    intersection = (probability * target).sum(dim=(1, 2, 3))
    denominator = probability.sum(dim=(1, 2, 3)) + (target * valid).sum(dim=(1, 2, 3))
    dice = 1 - ((2 * intersection + 1) / (denominator + 1)).mean()
    return bce + dice


def train(data_dir: Path, bundle_dir: Path, config: TrainConfig = TrainConfig(), log=print) -> dict:
    """Train on the training patients of the fixed split, write the bundle, record its validation Dice."""
    pairs = load_pairs(data_dir)
    training, validation = split_by_patient(pairs, config.validation_fraction, config.seed)
    network, training_seconds = fit(training, config, log)
    write_bundle(bundle_dir, network, config, training, validation, training_seconds)
    scores = evaluate(bundle_dir, data_dir, config)
    record_validation(bundle_dir, scores)
    return scores


def fit(training: list[Pair], config: TrainConfig, log=print) -> tuple[torch.nn.Module, float]:
    """The network trained on `training` (deterministic for a seed), and the seconds it took."""
    from monai.bundle import ConfigParser
    from monai.utils import set_determinism

    torch.set_num_threads(config.threads)
    set_determinism(seed=config.seed)
    torch.use_deterministic_algorithms(True, warn_only=config.device != "cpu")
    generator = torch.Generator().manual_seed(config.seed)
    images, labels = _tensors(training, config.input_size)
    parser = ConfigParser({"network_def": network_definition(config)})
    network = parser.get_parsed_content("network_def").to(config.device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    steps_per_epoch = int(np.ceil(len(training) / config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    started = time.perf_counter()
    for epoch in range(config.epochs):
        network.train()
        order = torch.randperm(len(training), generator=generator)
        epoch_loss = 0.0
        for start in range(0, len(training), config.batch_size):
            batch = order[start : start + config.batch_size]
            x, y = _augment(images[batch], labels[batch], generator)
            loss = masked_loss(network(x.to(config.device)), y.to(config.device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            epoch_loss += loss.item() * len(batch)
        if epoch % 10 == 0 or epoch == config.epochs - 1:
            log(f"epoch {epoch + 1}/{config.epochs} loss {epoch_loss / len(training):.4f} "
                f"({time.perf_counter() - started:.0f} s)")
    return network, time.perf_counter() - started


def evaluate(bundle_dir: Path, data_dir: Path, config: TrainConfig = TrainConfig()) -> dict:
    """Dice of the bundle on the validation patients, at mask resolution, ignore pixels excluded."""
    torch.set_num_threads(config.threads)
    segmenter = LungSegmenter(bundle_dir)
    _, validation = split_by_patient(load_pairs(data_dir), config.validation_fraction, config.seed)
    per_image = {pair.name: image_dice(segmenter, pair)[0] for pair in validation}
    values = list(per_image.values())
    return {
        "dice_mean": round(float(np.mean(values)), 4),
        "dice_min": round(float(np.min(values)), 4),
        "images": len(values),
        "patients": len({p.group for p in validation}),
        "per_image": {k: round(v, 4) for k, v in sorted(per_image.items())},
    }


def image_dice(segmenter: LungSegmenter, pair: Pair) -> tuple[float, list[str]]:
    """Dice of both lungs at the mask's resolution (ignore pixels excluded, after the post-processing of inference),
    and the quality warnings inference would give (a refusal counts as Dice 0 with its reason as the warning)."""
    valid = pair.mask != IGNORE
    truth = (pair.mask > IGNORE) & valid
    probability = segmenter.probability(pair.image)
    try:
        right, left = split_lungs(probability > segmenter.threshold)
    except NoLungsFound as error:
        return (1.0 if not truth.any() else 0.0), [str(error)]
    predicted = (right | left) & valid
    warnings = LungMasks(right=right, left=left, probability=probability).quality_warnings()
    denominator = predicted.sum() + truth.sum()
    return (float(2 * (predicted & truth).sum() / denominator) if denominator else 1.0), warnings


INTENDED_USE = (
    "Research and decision support inside medconsult: lung areas of adult frontal (PA/AP) chest radiographs, for "
    "the overlay a physician checks and for radiomics features. Not a medical device; not validated for children, "
    "lateral views or other modalities; a mask is checked by its warnings (confidence, lung-area share, side ratio)."
)


def inference_config(config: TrainConfig) -> dict:
    """configs/inference.json: the network and the settings inference uses, read as values (no prose)."""
    return {
        "network_def": network_definition(config),
        "spatial_size": config.input_size,  # the network's square input, in px
        "threshold": 0.5,  # on the lung probability
        "mirror_averaging": True,  # average the logits of the image and of its horizontal mirror
    }


def write_bundle(bundle_dir, network, config, training, validation, training_seconds) -> None:
    (bundle_dir / "configs").mkdir(parents=True, exist_ok=True)
    (bundle_dir / "models").mkdir(parents=True, exist_ok=True)
    # float16 storage halves the file; weights are cast back to float32 at load time.
    torch.save(
        {k: v.half().cpu() for k, v in network.state_dict().items()}, bundle_dir / "models" / "model.pt"
    )
    (bundle_dir / "configs" / "inference.json").write_text(
        json.dumps(inference_config(config), indent=2) + "\n"
    )
    metadata = {
        "version": "1.0.0",
        "changelog": {"1.0.0": "trained by `medconsult seg train` (medconsult/imaging/train_seg.py)"},
        "name": "lung_unet",
        "task": "Lung segmentation of frontal (PA/AP) chest radiographs",
        "description": "MONAI 2D UNet; one lung channel, split into right and left lung by connected components.",
        "intended_use": INTENDED_USE,
        "authors": "medconsult",
        "monai_version": __import__("monai").__version__,
        "pytorch_version": torch.__version__,
        "created": datetime.now(UTC).strftime("%Y-%m-%d"),
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "modality": "CR/DX",
                    "num_channels": 1,
                    "spatial_shape": [config.input_size, config.input_size],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "preprocessing": "greyscale in display orientation; scaled to [0, 1] between the 1st and 99th "
                    "percentiles; resized to the spatial shape with area averaging (aspect not kept)",
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "logits",
                    "num_channels": 1,
                    "spatial_shape": [config.input_size, config.input_size],
                    "dtype": "float32",
                    "threshold": 0.5,
                    "test_time_augmentation": "mean of the logits of the image and of its horizontal mirror",
                    "postprocessing": "sigmoid; bilinear resize to the input image; threshold; two largest connected "
                    "components with holes filled; the component with the smaller x centroid is the right lung",
                }
            },
        },
        "training": {
            "data": "seg_lung_v7_ccby: 68 chest radiographs (ieee8023 COVID-19 collection: Hannover Medical School "
            "and others) with human-reviewed V7 lung masks, 512 px",
            "licences": {"images": "CC BY 3.0 (Hannover) / CC BY 4.0", "masks": "CC BY 4.0 (V7 Labs)"},
            "split": f"by patient (manifest `group`), seed {config.seed}: {len(training)} training images of "
            f"{len({p.group for p in training})} patients, {len(validation)} validation images of "
            f"{len({p.group for p in validation})} other patients",
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()},
            "loss": "BCE + soft Dice, pixels marked 127 (ignore) excluded",
            "augmentation": "affine (±10°, scale 0.85-1.15, shift ±8%), gamma, contrast",
            "seconds": round(training_seconds, 1),
            "hardware": "CPU",
        },
    }
    (bundle_dir / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")


def record_validation(bundle_dir: Path, scores: dict) -> None:
    """Write the scores into the bundle's metadata and model card."""
    _record_validation(bundle_dir, scores)
    _write_model_card(bundle_dir, scores)


def _record_validation(bundle_dir: Path, scores: dict) -> None:
    path = bundle_dir / "configs" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["validation"] = {
        "command": "medconsult seg evaluate",
        "metric": "Dice of both lungs at mask resolution, ignore pixels excluded, after post-processing",
        **{k: v for k, v in scores.items() if k != "per_image"},
    }
    path.write_text(json.dumps(metadata, indent=2) + "\n")


def _write_model_card(bundle_dir: Path, scores: dict) -> None:
    metadata = json.loads((bundle_dir / "configs" / "metadata.json").read_text())
    inputs = metadata["network_data_format"]["inputs"]["image"]
    outputs = metadata["network_data_format"]["outputs"]["pred"]
    training = metadata["training"]
    rows = "\n".join(f"| {name} | {dice} |" for name, dice in scores["per_image"].items())
    card = f"""# {metadata["name"]} {metadata["version"]}: {metadata["task"]}

{metadata["description"]}

- Network: `{json.dumps(json.loads((bundle_dir / "configs" / "inference.json").read_text())["network_def"])}`
- Input: {inputs["num_channels"]} channel, {inputs["spatial_shape"][0]}x{inputs["spatial_shape"][1]};
  {inputs["preprocessing"]}.
- Output: {outputs["format"]}, threshold {outputs["threshold"]}; {outputs["postprocessing"]}.
- Training data: {training["data"]}.
  Licences: images {training["licences"]["images"]}, masks {training["licences"]["masks"]}.
- Split: {training["split"]}.
- Training: {training["loss"]}; augmentation {training["augmentation"]}; {training["config"]["epochs"]} epochs,
  {training["seconds"]} s on the CPU ({training["config"]["threads"]} threads), MONAI {metadata["monai_version"]},
  PyTorch {metadata["pytorch_version"]}. Reproduce with `medconsult seg train` (`make train-seg`).

## Validation (`medconsult seg evaluate`)

Dice of both lungs at mask resolution, pixels marked ignore excluded, on {scores["images"]} images of
{scores["patients"]} patients not used in training: **mean {scores["dice_mean"]}, minimum {scores["dice_min"]}**.

| image | Dice |
|---|---|
{rows}

Limits: a small training set (see the split above), mostly COVID-19 radiographs from one hospital (Hannover);
lungs include the retro-cardiac region as the masks do; not validated on paediatric, lateral or heavily rotated
films.
"""
    (bundle_dir / "docs").mkdir(parents=True, exist_ok=True)
    (bundle_dir / "docs" / "README.md").write_text(card)
