"""`medconsult fusion cv`: the fusion encoders, measured."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medconsult.cli.common import console, fail
from medconsult.config import Settings


def _paediatric_folder(data: Path | None) -> Path:
    from medconsult.fusion.paediatric import FOLDER

    folder = data or Settings().resolved_data_dir / FOLDER
    if not (folder / "manifest.csv").is_file():
        fail(f"{folder}: no manifest.csv (the {FOLDER} data set)")
    return folder


fusion_app = typer.Typer(
    no_args_is_help=True, help="Fusion encoders: measure them by patient-grouped cross-validation."
)


@fusion_app.command("cv")
def cv(
    data: Path = typer.Option(None, help="the paediatric set's folder (default: in the data folder)"),
    folds: int = typer.Option(5, min=2, help="patient-grouped folds"),
    epochs: int = typer.Option(None, help="override every configuration's epochs"),
    out: Path = typer.Option(Path("out/fusion/cv-image.json"), help="where to write the figures"),
) -> None:
    """Compare the radiograph encoder configurations (frozen ImageNet features, adapted tail), paediatric set."""
    from medconsult.fusion.image_cv import compare_configs, default_configs

    folder = _paediatric_folder(data)
    report = compare_configs(folder.parent, _cache_dir(), default_configs(epochs), folds,
                             log=console.print)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    console.print(f"written to {out}")


@fusion_app.command("train")
def train(
    data: Path = typer.Option(None, help="the paediatric set's folder (default: in the data folder)"),
    bundle: Path = typer.Option(None, help="where to write the bundle (default: the one the project ships)"),
    cv_report: Path = typer.Option(
        None, "--cv", help="`fusion cv` figures to record in the bundle's model card"
    ),
) -> None:
    """Train the radiograph encoder's tail on the CPU (seeded) and write its bundle."""
    from medconsult.fusion.bundle import DEFAULT_BUNDLE, record_validation, train_bundle
    from medconsult.fusion.finetune import TrainConfig
    from medconsult.fusion.paediatric import read_manifest
    from medconsult.fusion.trunk_cache import trunk_outputs

    folder, target = _paediatric_folder(data), bundle or DEFAULT_BUNDLE
    images = read_manifest(folder.parent)
    trunk = trunk_outputs(images.files, _cache_dir() / "trunk-kermany.npz", log=console.print)
    metadata = train_bundle(images, trunk, TrainConfig(), target)
    console.print(f"trained on {metadata['training']['images']} images, temperature "
                  f"{metadata['calibration']['temperature']} -> {target}")  # fmt: skip
    if cv_report:
        record_validation(target, json.loads(cv_report.read_text()))
        console.print(f"validation figures and model card: {target / 'docs' / 'README.md'}")


@fusion_app.command("predict")
def predict(
    folder: Path = typer.Argument(
        ..., help="a folder of radiographs (DICOM, PNG, JPEG), searched recursively"
    ),
    out: Path = typer.Option(..., help="the CSV to write"),
    population: str = typer.Option(None, help="adult or paediatric; not given: every row abstains"),
) -> None:
    """Etiology probabilities per radiograph of a folder, or an abstention with its reason."""
    from medconsult.fusion.predict import predict_folder, write_csv

    if population not in (None, "adult", "paediatric"):
        fail(f"--population must be adult or paediatric, got {population!r}")
    if not folder.is_dir():
        fail(f"{folder}: not a folder")
    rows = write_csv(predict_folder(folder, population), out)  # type: ignore[arg-type]
    console.print(f"{rows} row(s) -> {out}")


def _cache_dir() -> Path:
    return Settings().model_dir.parent / "fusion"
