"""The shared latent space: one projection head per modality, a fused embedding, and etiology heads.

Each head maps its modality's input (modalities.py) to a unit vector in the same `latent` dimensions; a case's
embedding is the normalised mean of the heads of the modalities it has, so any subset embeds. Training mixes:

- supervised: an etiology head per population on the fused embedding (a paediatric head never sees an adult, and
  the reverse), each population's loss averaged over its own cases so 5,000 children do not drown 75 adults;
- contrastive: the image, text and measurement projections of the same case are pulled together and pushed away
  from other cases' (symmetric InfoNCE), so a "shadow on a lung" and "persistent cough" of one case lie close;
- modality dropout: each step drops each modality of a multi-modal case with probability `modality_dropout`
  (never all), so a case with only an image, or only a record, still lands where its full version would.

Full-batch training: a few thousand cases fit in memory and a step takes well under a second on the CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medconsult.fusion.modalities import MODALITIES, ModalityInputs


@dataclass(frozen=True)
class LatentConfig:
    latent: int = 64
    hidden: int = 128
    dropout: float = 0.3
    modality_dropout: float = 0.3
    contrastive_weight: float = 0.5
    contrastive_temperature: float = 0.1
    single_modality_weight: float = 0.5  # each modality's own projection also classifies: no passenger modalities
    batch_size: int = 512  # per population and step; a smaller population is in every batch whole
    steps: int = 400
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 7

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Targets:
    """Per population: the class names and, per case, the class index or -1 (not this population / no label)."""

    classes: dict[str, tuple[str, ...]]
    labels: dict[str, np.ndarray] = field(default_factory=dict)


class LatentSpace(nn.Module):
    def __init__(self, dims: dict[str, int], classes: dict[str, tuple[str, ...]], config: LatentConfig) -> None:
        super().__init__()
        self.dims, self.classes, self.config = dims, classes, config
        self.heads = nn.ModuleDict({
            m: nn.Sequential(
                nn.LayerNorm(d), nn.Dropout(config.dropout), nn.Linear(d, config.hidden), nn.GELU(),
                nn.Linear(config.hidden, config.latent),
            )
            for m, d in dims.items()
        })
        self.etiology = nn.ModuleDict({p: nn.Linear(config.latent, len(c)) for p, c in classes.items()})
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))
        # learnt trust per modality: a modality that carries little (an age band alone) can weigh less in the mean
        self.modality_weight = nn.Parameter(torch.zeros(len(dims)))

    def project(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: F.normalize(self.heads[m](x), dim=-1) for m, x in features.items()}

    def fuse(self, projected: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
        """Normalised weighted mean of the present modalities' projections; a case with none gets a zero vector."""
        weights = self.modality_weight.exp()
        total = sum(projected[m] * (weights[i] * present[m].unsqueeze(-1).float()) for i, m in enumerate(projected))
        return F.normalize(total, dim=-1)

    def logits(self, embedding: torch.Tensor, population: str) -> torch.Tensor:
        return self.etiology[population](embedding) * self.logit_scale.exp()


def train_latent(
    inputs: ModalityInputs, targets: Targets, config: LatentConfig, pairable: np.ndarray | None = None
) -> LatentSpace:
    """`pairable`: the cases the contrastive term may use (default all). Leave out cases whose modalities say
    nothing case-specific (every Kermany child has the same age band and no measurements)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    dims = {m: inputs.features[m].shape[1] for m in MODALITIES}
    model = LatentSpace(dims, targets.classes, config)
    features = {m: torch.from_numpy(inputs.features[m]).float() for m in MODALITIES}
    present = {m: torch.from_numpy(inputs.present[m]) for m in MODALITIES}
    labels = {p: torch.from_numpy(v).long() for p, v in targets.labels.items()}
    rows = torch.ones(len(labels[next(iter(labels))]), dtype=torch.bool)
    if pairable is not None:
        rows = torch.from_numpy(pairable)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    model.train()
    for _ in range(config.steps):
        batch = _batch(labels, rows, config.batch_size, generator)
        step_features = {m: x[batch] for m, x in features.items()}
        step_present = {m: x[batch] for m, x in present.items()}
        step_labels = {p: y[batch] for p, y in labels.items()}
        kept = _drop_modalities(step_present, config.modality_dropout, generator)
        projected = model.project(step_features)
        fused = model.fuse(projected, kept)
        loss = sum(_population_loss(model, fused, p, step_labels[p]) for p in targets.classes)
        for m in MODALITIES:  # each modality alone, where the case has it
            alone = torch.where(step_present[m].unsqueeze(-1), projected[m], torch.zeros_like(projected[m]))
            loss = loss + config.single_modality_weight * sum(
                _population_loss(model, alone, p, torch.where(step_present[m], step_labels[p], -1))
                for p in targets.classes
            )
        paired = {m: step_present[m] & rows[batch] for m in MODALITIES}
        loss = loss + config.contrastive_weight * _contrastive(projected, paired, config.contrastive_temperature)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


@torch.no_grad()
def embed(model: LatentSpace, inputs: ModalityInputs) -> np.ndarray:
    """Fused unit-length embeddings (N, latent); zeros for a case with no modality."""
    features = {m: torch.from_numpy(inputs.features[m]).float() for m in model.dims}
    present = {m: torch.from_numpy(inputs.present[m]) for m in model.dims}
    return model.fuse(model.project(features), present).numpy()


@torch.no_grad()
def population_logits(model: LatentSpace, embeddings: np.ndarray, population: str) -> np.ndarray:
    return model.logits(torch.from_numpy(embeddings).float(), population).numpy()


def _batch(labels: dict[str, torch.Tensor], pairable: torch.Tensor, size: int, generator: torch.Generator):
    """Row indices of one step: up to `size` labelled cases of each population, and every pairable case."""
    chosen = [torch.nonzero(pairable).flatten()]
    for y in labels.values():
        rows = torch.nonzero(y >= 0).flatten()
        if len(rows) > size:
            rows = rows[torch.randperm(len(rows), generator=generator)[:size]]
        chosen.append(rows)
    return torch.unique(torch.cat(chosen))


def expert_logits(model: LatentSpace, inputs: ModalityInputs, population: str) -> np.ndarray:
    """The sum of each present modality's own logits: every modality a separate witness in the shared space, so a
    modality with little to say adds little instead of pulling the fused vector towards it."""
    total = np.zeros((len(inputs.present[MODALITIES[0]]), len(model.classes[population])))
    for m in MODALITIES:
        alone = population_logits(model, embed(model, inputs.only((m,))), population)
        total += alone * inputs.present[m][:, None]
    return total


def _drop_modalities(
    present: dict[str, torch.Tensor], rate: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    stacked = torch.stack([present[m] for m in MODALITIES], dim=1)  # (N, M)
    dropped = stacked & (torch.rand(stacked.shape, generator=generator) >= rate)
    empty = ~dropped.any(dim=1) & stacked.any(dim=1)
    if empty.any():  # keep one present modality, chosen at random, for a case that lost them all
        scores = (torch.rand(stacked[empty].shape, generator=generator) + 1e-6) * stacked[empty]
        dropped[empty] = F.one_hot(scores.argmax(dim=1), len(MODALITIES)).bool()
    return {m: dropped[:, i] for i, m in enumerate(MODALITIES)}


def _population_loss(model: LatentSpace, fused: torch.Tensor, population: str, labels: torch.Tensor) -> torch.Tensor:
    rows = labels >= 0
    if not rows.any():
        return fused.sum() * 0.0
    counts = torch.bincount(labels[rows], minlength=len(model.classes[population])).float()
    weights = counts.sum() / (counts.clamp(min=1) * len(counts))  # balanced: rare classes are not ignored
    return F.cross_entropy(model.logits(fused[rows], population), labels[rows], weight=weights)


def _contrastive(projected: dict[str, torch.Tensor], present: dict[str, torch.Tensor], temperature: float):
    losses = []
    for i, first in enumerate(MODALITIES):
        for second in MODALITIES[i + 1 :]:
            both = present[first] & present[second]
            if both.sum() < 2:
                continue
            a, b = projected[first][both], projected[second][both]
            similarity = a @ b.T / temperature
            target = torch.arange(len(a))
            losses.append((F.cross_entropy(similarity, target) + F.cross_entropy(similarity.T, target)) / 2)
    return sum(losses) / len(losses) if losses else torch.tensor(0.0)
