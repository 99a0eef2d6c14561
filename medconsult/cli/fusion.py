"""`medconsult fusion cv|train|train-latent|predict` and `medconsult index build`: the fusion models and the
reference library."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medconsult.cli.common import console, fail, invocation_settings


def _paediatric_folder(data: Path | None) -> Path:
    from medconsult.fusion.paediatric import FOLDER

    folder = data or invocation_settings().resolved_data_dir / FOLDER
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
                             log=console.print)
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
                  f"{metadata['calibration']['temperature']} -> {target}")
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


@fusion_app.command("train-latent")
def train_latent(
    folds: int = typer.Option(5, min=2, help="patient-grouped folds of the adult evaluation"),
    noncommercial: bool = typer.Option(
        True, help="use the non-commercial ieee8023 development cases when present (the adult etiology head and "
        "the text modality need them)",
    ),
    bundle: Path = typer.Option(None, help="where to write the bundle (default: the one the project ships)"),
    out: Path = typer.Option(Path("out/fusion/cv-latent.json"), help="where to write the adult figures"),
) -> None:
    """Cross-validate the shared latent space on the adult cases by modality, then train it on every case."""
    from medconsult.fusion.cases import reference_cases
    from medconsult.fusion.latent import LatentConfig
    from medconsult.fusion.latent_bundle import DEFAULT_LATENT_BUNDLE, save_latent_bundle
    from medconsult.fusion.latent_cv import adult_cross_validation, build_inputs, train_final
    from medconsult.fusion.modalities import default_image_encoder

    settings = invocation_settings()
    cases = reference_cases(settings.resolved_data_dir, include_noncommercial=noncommercial)
    if not cases:
        fail(f"{settings.resolved_data_dir}: no labelled cases (Kermany, Hannover or ieee8023)")
    console.print(f"{len(cases)} cases; image features (cached after the first run)...")
    inputs = build_inputs(cases, default_image_encoder(), _cache_dir(), log=console.print)
    config = LatentConfig()
    validation: dict = {}
    fold_models, patient_fold = [], {}
    if any(c.source == "ieee8023" for c in cases):
        figures, fold_models, patient_fold = adult_cross_validation(cases, inputs, config, folds, log=console.print)
        validation = {"command": "medconsult fusion train-latent", **figures}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(validation, indent=2))
        for view, figures in validation["views"].items():
            console.print(f"{view}: top-1 {figures['top1']['value']} macro-recall {figures['macro_recall']['value']}")
    else:
        console.print("no ieee8023 development cases: the adult head is trained on nothing and abstains")
    model, adult = train_final(cases, inputs, config)
    target = bundle or DEFAULT_LATENT_BUNDLE
    save_latent_bundle(model, cases, inputs, validation, target, fold_models, patient_fold)
    console.print(f"latent space (adult classes {', '.join(adult) or 'none'}) -> {target}")


def _cache_dir() -> Path:
    return invocation_settings().model_dir.parent / "fusion"


index_app = typer.Typer(no_args_is_help=True, help="The reference library of labelled cases (ChromaDB).")


@index_app.command("build")
def index_build(
    noncommercial: bool = typer.Option(
        None, help="include the non-commercial ieee8023 development cases when present (default: settings)"
    ),
    sources: str = typer.Option(None, help="only these data sets, comma-separated: kermany,hannover,ieee8023"),
    rebuild: bool = typer.Option(False, help="rebuild even when this model version's library is complete"),
) -> None:
    """Embed every labelled case the project may use and store it in this model version's collection."""
    from medconsult.fusion.cases import reference_cases
    from medconsult.fusion.latent import embed
    from medconsult.fusion.latent_bundle import load_latent_bundle
    from medconsult.fusion.latent_cv import build_inputs
    from medconsult.fusion.library import build, client, is_complete
    from medconsult.fusion.modalities import default_image_encoder

    settings = invocation_settings()
    include = settings.index_noncommercial if noncommercial is None else noncommercial
    cases = reference_cases(settings.resolved_data_dir, include_noncommercial=include)
    if sources:
        wanted = {s.strip() for s in sources.split(",")}
        cases = [c for c in cases if c.source in wanted]
    if not cases:
        fail(f"{settings.resolved_data_dir}: no labelled cases to index")
    latent, chroma = load_latent_bundle(), client(settings)
    where = settings.chroma_url or settings.index_dir
    # The model trained on everyone, and each cross-validation fold's model: a development patient's similar
    # cases are searched in the space of the fold that never saw them.
    spaces = latent.embedding_models()
    if not rebuild and all(is_complete(chroma, version, cases) for version, _ in spaces):
        console.print(f"reference library {latent.version} is complete ({len(cases)} cases, {len(spaces)} "
                      f"space(s), {where})")
        return
    inputs = build_inputs(cases, default_image_encoder(), _cache_dir(), log=console.print)
    for version, model in spaces:
        summary = build(chroma, version, cases, embed(model, inputs))
        console.print(f"{summary['cases']} cases in {summary['collection']} ({where}), {summary['build_s']} s")
