"""Does `change_score` follow the clinical course? (`medconsult eval change`)

On the Hannover set's patients with more than one radiograph, each film is segmented and measured once
(medconsult/imaging/zones.py) and every consecutive pair of one patient's films compared (comparison.py):

- same-day pairs are the repeat pairs: two films of a chest that had no time to change, whose scores give the noise
  floor (the repeatability coefficient, 1.96 x their standard deviation; also per zone);
- pairs days apart are labelled "worsened" when the patient was admitted to the ICU after the earlier film and at
  most 3 days after the later one, or when the arterial pO2 measured within a day of the later film was at least
  10 mmHg below the one within a day of the earlier film; all other pairs are the rest.

The AUC of change_score for "worsened" has a 95% interval from resampling patients. A pair whose films could not
both be measured, or whose comparison the tool would call not interpretable (a film with a segmentation caution),
keeps a score of 0 (no change seen) rather than leaving the denominator: it is counted and named. Such pairs do not
enter the noise floor: the tool states none for them.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medconsult.fusion.metrics import roc_auc
from medconsult.imaging.comparison import NOISE_FILE, Comparison, NoiseFloor, compare
from medconsult.imaging.io import read_radiograph
from medconsult.imaging.segmentation import load_segmenter
from medconsult.imaging.zones import REFERENCE_BUNDLE, LungMeasures, measure
from medconsult.stats import grouped_bootstrap_ci

ICU_HORIZON_DAYS = 3
PO2_FALL_MMHG = 10.0
PO2_WINDOW_DAYS = 1


@dataclass(frozen=True)
class Film:
    patient: str
    image_id: str
    path: Path
    day: int  # hospital day (days after admission)
    row: int
    icu_day: int | None  # hospital day of ICU admission
    po2: float | None  # arterial pO2 (mmHg) within PO2_WINDOW_DAYS of the film


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_films(source: Path) -> dict[str, list[Film]]:
    """Every film of a patient with two or more, in time order (day, then the CSV's row order)."""
    by_patient: dict[str, list[Film]] = defaultdict(list)
    with open(source / "data.csv", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            path = source / "png" / f"{row['image_id']}.png"
            admission = _number(row["admission_offset"])
            if not path.is_file() or admission is None:
                continue
            day = int(-admission)
            icu = _number(row["icu_admission_offset"])
            po2, po2_offset = _number(row["po2_val"]), _number(row["po2_offset"])
            near = po2 if po2 is not None and po2_offset is not None and abs(po2_offset) <= PO2_WINDOW_DAYS else None
            by_patient[row["patient_id"]].append(Film(
                row["patient_id"], row["image_id"], path, day, number,
                None if icu is None else day + int(icu), near,
            ))
    return {p: sorted(films, key=lambda f: (f.day, f.row)) for p, films in by_patient.items() if len(films) > 1}


def worsened(prior: Film, current: Film) -> tuple[bool, str]:
    icu = current.icu_day if current.icu_day is not None else prior.icu_day
    if icu is not None and prior.day < icu <= current.day + ICU_HORIZON_DAYS:
        return True, f"ICU admission on day {icu}"
    if prior.po2 is not None and current.po2 is not None and current.po2 <= prior.po2 - PO2_FALL_MMHG:
        return True, f"pO2 {prior.po2:g} -> {current.po2:g} mmHg"
    return False, ""


def measure_films(films: list[Film], log: Callable[[str], None] = lambda _: None) -> dict[str, LungMeasures | str]:
    """Each film's zone measures, or why it could not be measured."""
    segmenter = load_segmenter()
    measured: dict[str, LungMeasures | str] = {}
    for index, film in enumerate(films, start=1):
        try:
            pixels = read_radiograph(film.path).pixels
            masks = segmenter.segment(pixels)
            cautions = masks.quality_warnings()  # compare_radiographs calls such a comparison not interpretable
            measured[film.image_id] = (f"segmentation caution: {'; '.join(cautions)}" if cautions
                                       else measure(pixels, masks.right, masks.left))
        except ValueError as error:
            measured[film.image_id] = f"{type(error).__name__}: {error}"
        if index % 25 == 0:
            log(f"measured {index}/{len(films)} films")
    return measured


def _pair_score(measured: dict[str, Any], prior: Film, current: Film) -> Comparison | str:
    a, b = measured[prior.image_id], measured[current.image_id]
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else b
    return compare(a, b)


def validate(source: Path, log: Callable[[str], None] = lambda _: None, bootstrap: int = 2000) -> dict[str, Any]:
    patients = read_films(source)
    films = [f for group in patients.values() for f in group]
    measured = measure_films(films, log)
    repeat, interval, unmeasured = [], [], []
    for patient, group in patients.items():
        for prior, current in zip(group, group[1:], strict=False):
            outcome = _pair_score(measured, prior, current)
            if isinstance(outcome, str):
                unmeasured.append({"patient": patient, "prior": prior.image_id, "current": current.image_id,
                                   "why": outcome})
            pair = {"patient": patient, "prior": prior.image_id, "current": current.image_id,
                    "days": current.day - prior.day,
                    "change_score": 0.0 if isinstance(outcome, str) else outcome.change_score,
                    "zone_opacity_changes": [] if isinstance(outcome, str)
                    else [z.opacity_change for z in outcome.zones],
                    "measured": not isinstance(outcome, str),
                    "secondary": {} if isinstance(outcome, str) else secondary_scores(
                        measured[prior.image_id], measured[current.image_id], outcome)}
            if prior.day == current.day:
                repeat.append(pair)
            else:
                label, why = worsened(prior, current)
                interval.append({**pair, "worsened": label, "why": why})
    noise = noise_floor(repeat, source.name)
    return {
        "source": str(source),
        "patients": len(patients),
        "films": len(films),
        "films_unmeasured": sorted(k for k, v in measured.items() if isinstance(v, str)),
        "definition": {
            "change_score": "mean over the six lung zones of the opacity change, percentage points (+ = worse)",
            "worsened": f"ICU admission after the earlier film and <= {ICU_HORIZON_DAYS} days after the later, or "
                        f"pO2 (within {PO2_WINDOW_DAYS} day of each film) fell by >= {PO2_FALL_MMHG:g} mmHg",
            "noise_floor": "1.96 x the standard deviation of change_score over same-day pairs",
        },
        "noise_floor": noise.__dict__ if noise else None,
        "validation": {**discrimination(interval, bootstrap),
                       "interval_to_repeat_sd": _spread_ratio([p["change_score"] for p in interval if p["measured"]],
                                                              [p["change_score"] for p in repeat if p["measured"]])},
        "secondary": {name: secondary(interval, repeat, name, bootstrap) for name in SECONDARY},
        "pairs_unmeasured": unmeasured,
        "repeat_pairs": repeat,
        "interval_pairs": interval,
    }


# Other readings of the same measurements, reported beside the pre-specified change score (not chosen from them).
SECONDARY = {
    "density_change": "mean over the six zones of the density change, percent of the prior",
    "density_percentile_change": "mean over the six zones of the change of the density's reference percentile",
    "lower_zones_opacity_change": "mean opacity change of the four middle and lower zones, percentage points",
    "size_index_loss": "mean over both lungs of the lung size index's loss, percent",
}


def secondary_scores(prior: LungMeasures, current: LungMeasures, comparison: Comparison) -> dict[str, float]:
    before = {(z.side, z.zone): z for z in prior.zones}
    percentiles = [(z.density_percentile or 0) - (before[z.side, z.zone].density_percentile or 0)
                   for z in current.zones]
    return {
        "density_change": float(np.mean([z.density_change for z in comparison.zones])),
        "density_percentile_change": float(np.mean(percentiles)),
        "lower_zones_opacity_change": float(np.mean([z.opacity_change for z in comparison.zones
                                                     if z.zone != "upper"])),
        "size_index_loss": -float(np.mean(list(comparison.area_change.values()))),
    }


def secondary(interval: list[dict], repeat: list[dict], name: str, bootstrap: int) -> dict[str, Any]:
    """A secondary score's AUC (as the change score's) and its spread over interval pairs against repeat pairs."""
    scored = [{**p, "change_score": p["secondary"].get(name, 0.0)} for p in interval]
    interval_scores, repeat_scores = ([p["secondary"][name] for p in pairs if p["measured"]]
                                      for pairs in (interval, repeat))
    return {"definition": SECONDARY[name], **discrimination(scored, bootstrap),
            "interval_to_repeat_sd": _spread_ratio(interval_scores, repeat_scores)}


def _spread_ratio(interval: list[float], repeat: list[float]) -> float | None:
    """How much more films days apart differ than same-day films: above 1, the score sees more than noise."""
    if len(interval) < 2 or len(repeat) < 2 or not np.std(repeat, ddof=1):
        return None
    return round(float(np.std(interval, ddof=1) / np.std(repeat, ddof=1)), 2)


def noise_floor(repeat: list[dict], source: str) -> NoiseFloor | None:
    scores = [p["change_score"] for p in repeat if p["measured"]]
    zones = [c for p in repeat if p["measured"] for c in p["zone_opacity_changes"]]
    if len(scores) < 3:
        return None
    return NoiseFloor(
        change_score=round(1.96 * float(np.std(scores, ddof=1)), 1),
        zone_opacity=round(1.96 * float(np.std(zones, ddof=1)), 1),
        pairs=len(scores),
        patients=len({p["patient"] for p in repeat if p["measured"]}),
        source=f"same-day film pairs of the {source} set (medconsult eval change)",
    )


def discrimination(interval: list[dict], bootstrap: int) -> dict[str, Any]:
    labels = np.array([p["worsened"] for p in interval], dtype=bool)
    scores = np.array([p["change_score"] for p in interval])
    groups = [p["patient"] for p in interval]

    def auc(items: list[tuple[bool, float]]) -> float:
        return roc_auc(np.array([i[0] for i in items]), np.array([i[1] for i in items]))

    point, low, high = grouped_bootstrap_ci(list(zip(labels, scores, strict=True)), groups, auc, n=bootstrap)
    return {
        "pairs": len(interval),
        "worsened": int(labels.sum()),
        "rest": int((~labels).sum()),
        "patients": len(set(groups)),
        "auc": round(point, 3),
        "auc_95ci": [round(low, 3), round(high, 3)],
        "median_score_worsened": round(float(np.median(scores[labels])), 1) if labels.any() else None,
        "median_score_rest": round(float(np.median(scores[~labels])), 1) if (~labels).any() else None,
        "bootstrap": f"{bootstrap} resamples of patients",
    }


def record_noise_floor(result: dict[str, Any], folder: Path = REFERENCE_BUNDLE) -> Path:
    """The noise floor compare_radiographs states, with the validation figures it came with."""
    if result["noise_floor"] is None:
        raise ValueError("fewer than 3 measured same-day pairs: no noise floor to record")
    path = folder / "configs" / NOISE_FILE
    path.write_text(json.dumps({
        "command": "medconsult eval change --record",
        "definition": result["definition"],
        "noise_floor": result["noise_floor"],
        "validation": {**result["validation"], "films": result["films"],
                       "films_unmeasured": len(result["films_unmeasured"]),
                       "pairs_unmeasured": len(result["pairs_unmeasured"])},
    }, indent=1))
    return path
