"""Adapting the radiograph encoder's tail, and measuring it by patient-grouped cross-validation.

Two ways to use the ImageNet network, chosen between by measurement (`cross_validate`):
- `frozen`: its pooled features as they are, a linear classifier on top (the baseline);
- `tail`: its last `tail_blocks` MBConv blocks, head convolution and a linear classifier trained on the cached trunk
  activations (passed once through the frozen blocks in between).
Cached activations cannot be augmented geometrically, so training regularises with channel dropout on the trunk
activation, weight decay and label smoothing. Probabilities are calibrated by one temperature fitted on patients
held out of training.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from medconsult.fusion.image_encoder import DEFAULT_TAIL_BLOCKS, RadiographEncoder
from medconsult.fusion.metrics import (
    expected_calibration_error,
    precision_at_k,
    roc_auc,
    stratified_group_folds,
)
from medconsult.fusion.trunk_cache import TrunkOutputs

Mode = Literal["frozen", "tail"]
LOG_TEMPERATURE_RANGE = (-3.0, 3.0)  # temperatures 0.05-20


@dataclass(frozen=True)
class TrainConfig:
    mode: Mode = "tail"
    tail_blocks: int = DEFAULT_TAIL_BLOCKS
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.05
    activation_dropout: float = 0.1
    seed: int = 0


def train(inputs: torch.Tensor, labels: torch.Tensor, classes: int, config: TrainConfig) -> RadiographEncoder:
    """`inputs`: the tail's input (`tail_inputs`) or ImageNet features (frozen)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = RadiographEncoder(classes, config.tail_blocks)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trained = model.tail_modules() if config.mode == "tail" else [model.head]
    parameters = [parameter for module in trained for parameter in module.parameters()]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(inputs) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=steps)
    for _ in range(config.epochs):
        model.eval()  # the frozen trunk's batch-norm statistics stay ImageNet's
        for module in [*trained, model.dropout]:
            module.train()
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(inputs), config.batch_size):
            batch = order[start : start + config.batch_size]
            logits = _logits(model, inputs[batch].float(), config)
            loss = F.cross_entropy(logits, labels[batch], label_smoothing=config.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    return model.eval()


def _logits(model: RadiographEncoder, inputs: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Training logits: dropout on the pooled features, and channel dropout on the cached trunk activation."""
    if config.mode == "frozen":
        return model.head(model.dropout(inputs))
    pooled = model.adapted(F.dropout2d(inputs, config.activation_dropout, training=True))
    return model.head(model.dropout(pooled))


@torch.no_grad()
def predict(
    model: RadiographEncoder, inputs: torch.Tensor, mode: Mode, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and pooled features from what `train` read."""
    logits, features = [], []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size].float()
        pooled = batch if mode == "frozen" else model.adapted(batch)
        features.append(pooled)
        logits.append(model.head(pooled))
    return torch.cat(logits).numpy(), torch.cat(features).numpy()


@torch.no_grad()
def tail_inputs(trunk: TrunkOutputs, config: TrainConfig, batch_size: int = 256) -> torch.Tensor:
    """The cached activations passed through the frozen blocks before the adapted tail, once per image."""
    bridge = RadiographEncoder(1, config.tail_blocks).eval().bridge
    activations = torch.from_numpy(trunk.activations)
    return torch.cat([bridge(activations[start : start + batch_size].float())
                      for start in range(0, len(activations), batch_size)])


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood on held-out logits."""
    log_t = torch.zeros(1, requires_grad=True)
    scores, targets = torch.tensor(logits), torch.tensor(labels)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(scores / log_t.clamp(*LOG_TEMPERATURE_RANGE).exp(), targets)
        loss.backward()
        return loss

    optimiser.step(closure)
    # bounded: a few held-out images that are all classified right would drive the temperature to zero
    return float(log_t.detach().clamp(*LOG_TEMPERATURE_RANGE).exp())


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits / temperature
    scaled = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return scaled / scaled.sum(axis=1, keepdims=True)


def cross_validate(
    trunk: TrunkOutputs, labels: np.ndarray, groups: np.ndarray, config: TrainConfig, folds: int = 5
) -> tuple[dict, np.ndarray]:
    """Patient-grouped cross-validation of one configuration; the figures and the out-of-fold probabilities."""
    started = time.perf_counter()
    fold_of = stratified_group_folds(labels, groups, folds, config.seed)
    inputs = (
        tail_inputs(trunk, config) if config.mode == "tail" else torch.from_numpy(trunk.imagenet_features)
    )
    targets = torch.from_numpy(labels)
    classes = int(labels.max()) + 1
    probabilities = np.zeros((len(labels), classes))
    precision = []
    rng = np.random.default_rng(config.seed)
    for fold in range(folds):
        test, training = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
        training_groups = np.unique(groups[training])
        held = np.isin(
            groups[training],
            rng.choice(training_groups, size=max(1, len(training_groups) // 10), replace=False),
        )
        calibration, fitting = training[held], training[~held]
        model = train(inputs[fitting], targets[fitting], classes, config)
        temperature = fit_temperature(
            predict(model, inputs[calibration], config.mode)[0], labels[calibration]
        )
        test_logits, test_features = predict(model, inputs[test], config.mode)
        reference_features = predict(model, inputs[fitting], config.mode)[1]
        probabilities[test] = softmax(test_logits, temperature)
        precision.append(precision_at_k(test_features, labels[test], reference_features, labels[fitting]))
    figures = {
        "config": asdict(config),
        "folds": folds,
        "images": len(labels),
        "seconds": round(time.perf_counter() - started, 1),
        "precision_at_5": round(float(np.mean(precision)), 4),
    }
    return figures, probabilities


def paediatric_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Normal (0) vs pneumonia and, among pneumonias, bacterial (1) vs viral (2); accuracy and calibration."""
    pneumonia = labels != 0
    bacterial_share = probabilities[:, 1] / (probabilities[:, 1] + probabilities[:, 2]).clip(1e-12)
    return {
        "normal_vs_pneumonia_auc": round(roc_auc(pneumonia, 1 - probabilities[:, 0]), 4),
        "bacterial_vs_viral_auc": round(roc_auc(labels[pneumonia] == 1, bacterial_share[pneumonia]), 4),
        "accuracy": round(float((probabilities.argmax(axis=1) == labels).mean()), 4),
        "ece": round(expected_calibration_error(probabilities, labels), 4),
    }
