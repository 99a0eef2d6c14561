"""`medconsult seg train|evaluate|cv|record-cv|zone-reference`: the lung-segmentation bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from medconsult.cli.common import console, fail, invocation_settings, print_json
from medconsult.imaging.segmentation import DEFAULT_BUNDLE

seg_app = typer.Typer(
    no_args_is_help=True, help="Lung segmentation: train the bundled model, measure its Dice."
)


NONCOMMERCIAL_BUNDLE = Path(".medconsult") / "bundles" / "lung_unet_ncsa"


def _data_dir(data: Path | None, name: str = "seg_lung_v7_ccby") -> Path:
    folder = data or invocation_settings().resolved_data_dir / name
    if not (folder / "manifest.csv").is_file():
        fail(f"{folder}: no manifest.csv (the {name} data set)")
    return folder


def _external_set() -> Path | None:
    """The non-commercial pairs, when this machine has them: an external check, never needed."""
    folder = invocation_settings().resolved_data_dir / "seg_lung_v7_ncsa"
    return folder if (folder / "manifest.csv").is_file() else None


def _candidates(epochs: int | None, candidate: list[str] | None) -> dict:
    from medconsult.imaging.train_seg import CANDIDATES

    unknown = set(candidate or []) - set(CANDIDATES)
    if unknown:
        fail(f"unknown candidate(s) {sorted(unknown)}; known: {sorted(CANDIDATES)}")
    chosen = {name: config for name, config in CANDIDATES.items() if not candidate or name in candidate}
    if epochs is not None:
        chosen = {name: tuple(dataclasses.replace(config, epochs=epochs) for config in configs)
                  for name, configs in chosen.items()}
    return chosen


@seg_app.command("train")
def train(
    data: Path = typer.Option(None, help="seg_lung_v7_ccby folder (default: in the data folder)"),
    bundle: Path = typer.Option(None, help="where to write the bundle (default: the shipped bundle; with "
                                "--noncommercial .medconsult/bundles/lung_unet_ncsa)"),
    noncommercial: bool = typer.Option(False, help="also train on seg_lung_v7_ncsa (CC BY-NC-SA images): an "
                                       "optional bundle for non-commercial use, never the default"),
    epochs: int = typer.Option(None, help="override the number of epochs"),
    candidate: list[str] = typer.Option(None, help="only these candidate configurations (default: all)"),
) -> None:
    """Train on the CPU (deterministic, fixed seed): choose the configuration on an inner patient split, train it on
    every patient, write the bundle, measure it on the external set when it is there, write its card."""
    from medconsult.imaging.train_seg import DEFAULT_LICENCE, NONCOMMERCIAL_LICENCE
    from medconsult.imaging.train_seg import train as run_training

    folders = [_data_dir(data)]
    external = _external_set()
    if noncommercial:
        folders.append(_data_dir(None, "seg_lung_v7_ncsa"))
        external = None  # trained on it
    target = bundle or (NONCOMMERCIAL_BUNDLE if noncommercial else DEFAULT_BUNDLE)
    fitted = run_training(folders, target, _candidates(epochs, candidate), external=external,
                          licence=NONCOMMERCIAL_LICENCE if noncommercial else DEFAULT_LICENCE, log=console.print)
    console.print(f"chose {fitted.chosen}, trained in {fitted.seconds:.0f} s -> {target}")
    if noncommercial:
        console.print(f"non-commercial use only; select it with MEDCONSULT_SEG_BUNDLE={target.resolve()}")


@seg_app.command("evaluate")
def evaluate(
    data: Path = typer.Option(None, help="a folder of image/mask pairs with manifest.csv (default: seg_lung_v7_ncsa, "
                              "the external set)"),
    bundle: Path = typer.Option(DEFAULT_BUNDLE, help="bundle to evaluate"),
    record: bool = typer.Option(False, help="write the scores into the bundle's metadata and model card"),
) -> None:
    """Dice of a bundle on every pair of a data set, per image and overall."""
    from medconsult.imaging.seg_card import write_model_card
    from medconsult.imaging.train_seg import evaluate as run_evaluation
    from medconsult.imaging.train_seg import record_external

    scores = run_evaluation(bundle, _data_dir(data, "seg_lung_v7_ncsa"))
    if record:
        record_external(bundle, scores)
        write_model_card(bundle)
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
    epochs: int = typer.Option(None, help="override the number of epochs of every candidate"),
    candidate: list[str] = typer.Option(None, help="only these candidate configurations (default: all)"),
    out: Path = typer.Option(Path("out/seg-cv.json"), help="where to write the figures"),
    record: Path = typer.Option(None, help="also record them in this bundle and its card (it must have been "
                                "trained with the same candidates)"),
) -> None:
    """Patient-grouped k-fold cross-validation of the training procedure (the choice of configuration inside each
    fold's training patients, then training): every image's Dice from a network that never saw its patient; the
    external set measured by every fold's network; the quality warnings' hit rates."""
    import json

    from medconsult.imaging.seg_cv import cross_validate
    from medconsult.imaging.train_seg import record_cross_validation

    result = cross_validate(_data_dir(data), _candidates(epochs, candidate), folds, external or _external_set(),
                            log=console.print)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    if record is not None:
        try:
            record_cross_validation(record, result)
        except ValueError as error:
            fail(str(error))
    figures = result["cross_validation"]
    console.print(f"cross-validated Dice mean {figures['dice_mean']} (95% CI {figures['dice_95ci']}), worst "
                  f"{figures['dice_min']} ({figures['worst_image']}); external {result['external']}; "
                  f"warnings {result['warnings']} -> {out}")


@seg_app.command("record-cv")
def record_cv(
    result: Path = typer.Argument(..., help="the JSON `medconsult seg cv` wrote"),
    bundle: Path = typer.Option(DEFAULT_BUNDLE, help="the bundle the cross-validated procedure trained"),
) -> None:
    """Record a finished cross-validation in the bundle and its card (it must be of the bundle's candidates), so
    the hour-long cross-validation need not run again after `medconsult seg train`."""
    import json

    from medconsult.imaging.train_seg import record_cross_validation

    try:
        record_cross_validation(bundle, json.loads(result.read_text()))
    except ValueError as error:
        fail(str(error))
    console.print(f"{result} -> {bundle / 'configs' / 'cross_validation.json'} and {bundle / 'docs' / 'README.md'}")
