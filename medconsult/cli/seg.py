"""`medconsult seg train|evaluate`: the lung-segmentation bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from medconsult.cli.common import console, fail, invocation_settings, print_json
from medconsult.imaging.segmentation import DEFAULT_BUNDLE

seg_app = typer.Typer(
    no_args_is_help=True, help="Lung segmentation: train the bundled model, measure its Dice."
)


def _data_dir(data: Path | None) -> Path:
    folder = data or invocation_settings().resolved_data_dir / "seg_lung_v7_ccby"
    if not (folder / "manifest.csv").is_file():
        fail(f"{folder}: no manifest.csv (the seg_lung_v7_ccby data set)")
    return folder


@seg_app.command("train")
def train(
    data: Path = typer.Option(None, help="seg_lung_v7_ccby folder (default: in the data folder)"),
    bundle: Path = typer.Option(DEFAULT_BUNDLE, help="where to write the bundle"),
    epochs: int = typer.Option(None, help="override the number of epochs"),
) -> None:
    """Train on the CPU (deterministic, fixed seed), write the bundle, and record its validation Dice."""
    from medconsult.imaging.train_seg import TrainConfig
    from medconsult.imaging.train_seg import train as run_training

    config = TrainConfig() if epochs is None else dataclasses.replace(TrainConfig(), epochs=epochs)
    scores = run_training(_data_dir(data), bundle, config, log=console.print)
    console.print(f"validation Dice mean {scores['dice_mean']}, min {scores['dice_min']} "
                  f"({scores['images']} images of {scores['patients']} unseen patients) -> {bundle}")


@seg_app.command("evaluate")
def evaluate(
    data: Path = typer.Option(None, help="seg_lung_v7_ccby folder (default: in the data folder)"),
    bundle: Path = typer.Option(DEFAULT_BUNDLE, help="bundle to evaluate"),
    record: bool = typer.Option(False, help="write the scores into the bundle's metadata and model card"),
) -> None:
    """Dice of a bundle on the validation patients (the split used in training), per image and overall."""
    from medconsult.imaging.train_seg import evaluate as run_evaluation
    from medconsult.imaging.train_seg import record_validation

    scores = run_evaluation(bundle, _data_dir(data))
    if record:
        record_validation(bundle, scores)
    print_json(scores)


@seg_app.command("zone-reference")
def zone_reference(
    data: Path = typer.Option(None, help="seg_lung_v7_ccby folder (default: in the data folder)"),
) -> None:
    """Learn the zone reference (opacity thresholds, zone densities) from the human-reviewed lung masks and write it
    into medconsult/imaging/bundles/zone_reference. Then `medconsult eval change --record` re-measures the noise."""
    from medconsult.imaging.zone_reference import build_reference, write_reference
    from medconsult.imaging.zones import REFERENCE_BUNDLE

    folder = _data_dir(data)
    reference = build_reference(folder)
    console.print(f"{reference['name']}: thresholds {reference['thresholds']} -> "
                  f"{write_reference(reference, REFERENCE_BUNDLE, folder)}")


@seg_app.command("cv")
def cross_validation(
    data: Path = typer.Option(None, help="seg_lung_v7_ccby folder (default: in the data folder)"),
    external: Path = typer.Option(None, help="an external check set (default: seg_lung_v7_ncsa when present)"),
    folds: int = typer.Option(5, min=2, help="patient-grouped folds"),
    epochs: int = typer.Option(None, help="override the number of epochs"),
    out: Path = typer.Option(Path("out/seg-cv.json"), help="where to write the figures"),
) -> None:
    """Patient-grouped k-fold cross-validation of the training configuration: every image's Dice from a network that
    never saw its patient; the external set measured by every fold's network; the quality warnings' hit rates."""
    import json

    from medconsult.imaging.seg_cv import cross_validate
    from medconsult.imaging.train_seg import TrainConfig

    folder = _data_dir(data)
    if external is None:
        candidate = invocation_settings().resolved_data_dir / "seg_lung_v7_ncsa"
        external = candidate if (candidate / "manifest.csv").is_file() else None
    config = TrainConfig() if epochs is None else dataclasses.replace(TrainConfig(), epochs=epochs)
    result = cross_validate(folder, config, folds, external, log=console.print)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    figures = result["cross_validation"]
    console.print(f"cross-validated Dice mean {figures['dice_mean']} (95% CI {figures['dice_95ci']}), worst "
                  f"{figures['dice_min']} ({figures['worst_image']}); external {result['external']}; "
                  f"warnings {result['warnings']} -> {out}")
