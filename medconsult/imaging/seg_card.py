"""The lung-segmentation bundle's model card (docs/README.md), written from what the bundle records: its metadata
(training data, licences, the configuration chosen and the inner-validation figures it was chosen by, the external
check) and configs/cross_validation.json (`medconsult seg cv --record`). Every figure in the card is one of those
files' values, so the card-reproduction test can hold the card to them."""

from __future__ import annotations

import json
from pathlib import Path

from medconsult.imaging.segmentation import MIRROR_AGREEMENT_FLOOR


def write_model_card(bundle_dir: Path) -> None:
    metadata = json.loads((bundle_dir / "configs" / "metadata.json").read_text())
    cv_path = bundle_dir / "configs" / "cross_validation.json"
    cv = json.loads(cv_path.read_text()) if cv_path.is_file() else None
    (bundle_dir / "docs").mkdir(parents=True, exist_ok=True)
    (bundle_dir / "docs" / "README.md").write_text(model_card(metadata, cv, bundle_dir))


def model_card(metadata: dict, cv: dict | None, bundle_dir: Path) -> str:
    inputs = metadata["network_data_format"]["inputs"]["image"]
    outputs = metadata["network_data_format"]["outputs"]["pred"]
    training = metadata["training"]
    network = json.loads((bundle_dir / "configs" / "inference.json").read_text())["network_def"]
    return f"""# {metadata["name"]} {metadata["version"]}: {metadata["task"]}

{metadata["description"]}

**Use: {training["use"]}.**

- Network: `{json.dumps(network)}`
- Input: {inputs["num_channels"]} channel, {inputs["spatial_shape"][0]}x{inputs["spatial_shape"][1]};
  {inputs["preprocessing"]}.
- Output: {outputs["format"]}, threshold {outputs["threshold"]}; {outputs["test_time_augmentation"]};
  {outputs["postprocessing"]}.
- Training data: {training["data"]}.
  Licences: images {training["licences"]["images"]}, masks {training["licences"]["masks"]}.
- Trained on all {training["images"]} images of {training["patients"]} patients; {training["loss"]}; augmentation
  {training["augmentation"]}; {_networks(training["configs"])}, {training["seconds"]} s on the CPU
  ({training["configs"][0]["threads"]} threads), MONAI {metadata["monai_version"]},
  PyTorch {metadata["pytorch_version"]}.
  Reproduce with `medconsult seg train` (`make train-seg`).
{_selection_text(training.get("selection"))}{_cv_text(cv)}{_external_text(metadata.get("external"), cv)}
## Limits

A small training set, mostly COVID-19 radiographs of adults, many from one hospital (Hannover); lungs include the
retro-cardiac region as the masks do; not validated on paediatric, lateral or heavily rotated films. The lowest
rows above are AP films of very sick patients: dense lung bases, hazy films whose diaphragm is hard to see. The
quality warnings catch few of the failures: check the overlay.
"""


def _networks(configs: list[dict]) -> str:
    epochs = ", ".join(str(config["epochs"]) for config in configs)
    return f"one network, {epochs} epochs" if len(configs) == 1 else f"{len(configs)} networks, {epochs} epochs"


def _selection_text(selection: dict | None) -> str:
    history = f"\n## How the configuration was chosen\n\n{selection['how_chosen']}\n" if (
        selection and selection.get("how_chosen")) else ""
    if not selection or not selection.get("inner_validation"):
        return history
    scores = selection["inner_validation"]
    rows = "\n".join(f"| {name} | {s['dice_mean']} | {s['dice_min']} |" for name, s in scores.items())
    any_scores = next(iter(scores.values()))
    return f"""
## Configuration chosen by the training procedure

Each candidate was trained on an inner split of the training patients and measured on the other
{any_scores["images"]} images of {any_scores["patients"]} patients; the highest mean Dice (then the higher worst
image) was trained on all patients. Chosen: **{selection["chosen"]}**.

| candidate | inner mean Dice | inner worst image |
|---|---|---|
{rows}
{history}"""


def _procedure(candidates: dict) -> str:
    names = ", ".join(candidates)
    return f"the choice between {names} on an inner split, then training" if len(candidates) > 1 else (
        f"training {names}, the one configuration")


def _cv_text(cv: dict | None) -> str:
    if cv is None:
        return "\n## Cross-validation\n\nNot recorded for this bundle (`medconsult seg cv --record`).\n"
    figures, warnings = cv["cross_validation"], cv["warnings"]
    folds = "\n".join(
        f"| {index + 1} | {fold['patients']} | {fold['images']} | {fold['chosen']} | {fold['dice_mean']} | "
        f"{fold['dice_min']} ({fold['worst_image']}) |"
        for index, fold in enumerate(cv["per_fold"])
    )
    per_image = "\n".join(
        f"| {row['image']} | {row['patient']} | {row['fold'] + 1} | {row['dice']} | {'; '.join(row['warnings'])} |"
        for row in sorted(cv["per_image"], key=lambda row: row["dice"])
    )
    return f"""
## Cross-validation (`medconsult seg cv`)

{cv["folds"]}-fold cross-validation grouped by patient on {cv["data"]}: for each fold the whole training procedure
({_procedure(cv["candidates"])}) ran on the other folds' patients
only, and its networks were measured on the held-out ones. Dice of both lungs at mask resolution, pixels marked ignore
excluded, after the post-processing of inference.

**Mean Dice {figures["dice_mean"]} (95% CI {figures["dice_95ci"][0]}-{figures["dice_95ci"][1]}, patient
bootstrap), worst image {figures["dice_min"]} ({figures["worst_image"]})**; {figures["below_0.90"]} of
{figures["images"]} images below 0.90; {figures["patients"]} patients.

| fold | patients | images | chosen | mean Dice | worst image |
|---|---|---|---|---|---|
{folds}

Quality warnings (low confidence, lung share, side ratio) on the held-out images fired on {warnings["poor_warned"]}
of {warnings["poor_images"]} images with Dice below 0.90 and on {warnings["good_warned"]} of {warnings["good_images"]}
with Dice 0.90 or more. A candidate warning, not given: the masks drawn on the film and on its mirror image
agreeing below Dice {MIRROR_AGREEMENT_FLOOR} would have fired on {warnings.get("poor_mirror_below_0.90")} of the poor
and {warnings.get("good_mirror_below_0.90")} of the good images.

| image | patient | fold | Dice | warnings |
|---|---|---|---|---|
{per_image}
"""


def _warned_text(warnings: dict | None) -> str:
    if not warnings:
        return ""
    return (f" The quality warnings fired on {warnings['poor_warned']} of the {warnings['poor_images']} results below "
            f"0.90 and on {warnings['good_warned']} of the {warnings['good_images']} others; mirror agreement below "
            f"{MIRROR_AGREEMENT_FLOOR}: {warnings['poor_mirror_below_0.90']} of the poor, "
            f"{warnings['good_mirror_below_0.90']} of the good.")


def _external_text(external: dict | None, cv: dict | None) -> str:
    lines = []
    if cv and cv.get("external"):
        folds = cv["external"]
        lines.append(
            f"- The {cv['folds']} cross-validation fold networks on {folds['data']} ({folds['images']} image-network "
            f"results, {folds['patients']} patients): mean Dice {folds['dice_mean']} (95% CI "
            f"{folds['dice_95ci'][0]}-{folds['dice_95ci'][1]}), worst {folds['dice_min']} ({folds['worst_image']}), "
            f"{folds['below_0.90']} below 0.90." + _warned_text(folds.get("warnings"))
        )
    if external:
        lowest = sorted(external["per_image"].items(), key=lambda item: item[1])[:5]
        lines.append(
            f"- This bundle on {external['data']} (`{external['command']}`): {external['images']} images of "
            f"{external['patients']} patients, mean Dice {external['dice_mean']}, worst {external['dice_min']}; "
            f"lowest five: {', '.join(f'{name} {dice}' for name, dice in lowest)}."
        )
    if not lines:
        return ""
    return "\n## External check (patients never used for training or selection)\n\n" + "\n".join(lines) + "\n"
