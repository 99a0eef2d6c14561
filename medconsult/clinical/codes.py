"""The analytes the calculators and importers read and write: LOINC codes and canonical UCUM units.

One table for both sides, so an imported case's Observations are exactly what the calculators look for. The
first LOINC code of an analyte is the one importers write; the others are accepted when reading any server.
Values in another unit are converted to the canonical one (`to_canonical`); an unknown unit is not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"

Category = Literal["laboratory", "vital-signs"]


@dataclass(frozen=True)
class Analyte:
    key: str
    name: str
    loinc: tuple[str, ...]  # first: written by importers; all: accepted when reading
    display: str  # LOINC long common name of loinc[0]
    unit: str  # canonical UCUM unit
    category: Category
    factors: dict[str, float] = field(default_factory=dict)  # other UCUM unit -> factor to the canonical one


ANALYTES: dict[str, Analyte] = {
    a.key: a
    for a in (
        Analyte("temperature", "Body temperature", ("8310-5", "8331-1"), "Body temperature", "Cel",
                "vital-signs"),
        Analyte("heart_rate", "Heart rate", ("8867-4",), "Heart rate", "/min", "vital-signs"),
        Analyte("body_weight", "Body weight", ("29463-7", "3141-9"), "Body weight", "kg", "vital-signs",
                {"g": 1e-3, "[lb_av]": 0.45359237}),
        Analyte("respiratory_rate", "Respiratory rate", ("9279-1",), "Respiratory rate", "/min", "vital-signs"),
        Analyte("spo2", "Oxygen saturation (SpO2)", ("59408-5", "2708-6"),
                "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "vital-signs"),
        Analyte("systolic_bp", "Systolic blood pressure", ("8480-6",), "Systolic blood pressure", "mm[Hg]",
                "vital-signs", {"mmHg": 1.0}),
        Analyte("diastolic_bp", "Diastolic blood pressure", ("8462-4",), "Diastolic blood pressure", "mm[Hg]",
                "vital-signs", {"mmHg": 1.0}),
        Analyte("gcs", "Glasgow coma score", ("9269-2",), "Glasgow coma score total", "{score}", "vital-signs"),
        Analyte("leukocytes", "Leukocytes", ("6690-2", "26464-8"),
                "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "laboratory",
                {"10*9/L": 1.0, "/uL": 1e-3, "/mm3": 1e-3, "10*3/mm3": 1.0}),
        Analyte("neutrophils", "Neutrophils", ("751-8", "26499-4"),
                "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL", "laboratory",
                {"10*9/L": 1.0, "/uL": 1e-3, "/mm3": 1e-3}),
        Analyte("lymphocytes", "Lymphocytes", ("731-0", "26474-7"),
                "Lymphocytes [#/volume] in Blood by Automated count", "10*3/uL", "laboratory",
                {"10*9/L": 1.0, "/uL": 1e-3, "/mm3": 1e-3}),
        Analyte("band_neutrophils", "Band neutrophils", ("764-1", "26507-4"),
                "Neutrophils.band form/100 leukocytes in Blood by Manual count", "%", "laboratory"),
        Analyte("crp", "C-reactive protein", ("1988-5",), "C reactive protein [Mass/volume] in Serum or Plasma",
                "mg/L", "laboratory", {"mg/dL": 10.0}),
        Analyte("procalcitonin", "Procalcitonin", ("33959-8",), "Procalcitonin [Mass/volume] in Serum or Plasma",
                "ng/mL", "laboratory", {"ug/L": 1.0}),
        Analyte("d_dimer", "D-dimer", ("48065-7",), "Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma",
                "mg/L{FEU}", "laboratory", {"mg/L": 1.0, "ug/mL{FEU}": 1.0, "ng/mL{FEU}": 1e-3}),
        Analyte("ldh", "Lactate dehydrogenase", ("2532-0",),
                "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", "U/L", "laboratory"),
        Analyte("po2", "pO2", ("11556-8", "2703-7"), "Oxygen [Partial pressure] in Blood", "mm[Hg]", "laboratory",
                {"kPa": 7.50062, "mmHg": 1.0}),
        Analyte("pco2", "pCO2", ("11557-6", "2019-8"), "Carbon dioxide [Partial pressure] in Blood", "mm[Hg]",
                "laboratory", {"kPa": 7.50062, "mmHg": 1.0}),
        Analyte("arterial_po2", "Arterial pO2", ("2703-7",), "Oxygen [Partial pressure] in Arterial blood",
                "mm[Hg]", "laboratory", {"kPa": 7.50062, "mmHg": 1.0}),
        Analyte("arterial_pco2", "Arterial pCO2", ("2019-8",), "Carbon dioxide [Partial pressure] in Arterial blood",
                "mm[Hg]", "laboratory", {"kPa": 7.50062, "mmHg": 1.0}),
        Analyte("arterial_ph", "Arterial pH", ("2744-1",), "pH of Arterial blood", "[pH]", "laboratory",
                {"pH": 1.0}),
        Analyte("bun", "Urea nitrogen", ("3094-0", "6299-2", "22664-7"),
                "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory",
                {"mmol/L": 2.801}),  # 22664-7 is urea in mmol/L; 1 mmol/L urea carries 2.801 mg/dL of nitrogen
        Analyte("creatinine", "Creatinine", ("2160-0", "38483-4"), "Creatinine [Mass/volume] in Serum or Plasma",
                "mg/dL", "laboratory", {"umol/L": 1 / 88.42}),
        Analyte("sodium", "Sodium", ("2951-2", "2947-0"), "Sodium [Moles/volume] in Serum or Plasma", "mmol/L",
                "laboratory", {"meq/L": 1.0}),
        Analyte("glucose", "Glucose", ("2345-7", "2339-0"), "Glucose [Mass/volume] in Serum or Plasma", "mg/dL",
                "laboratory", {"mmol/L": 18.016}),
        Analyte("hematocrit", "Hematocrit", ("4544-3", "20570-8"),
                "Hematocrit [Volume Fraction] of Blood by Automated count", "%", "laboratory"),
    )
}

BY_LOINC: dict[str, Analyte] = {}
for _analyte in ANALYTES.values():
    for _code in _analyte.loinc:
        BY_LOINC.setdefault(_code, _analyte)  # a code shared by two analytes belongs to the first listed


class UnitError(ValueError):
    pass


def to_canonical(analyte: Analyte, value: float, unit: str | None) -> float:
    """`value` in the analyte's canonical unit; a missing unit is taken as canonical, an unknown one refused."""
    if unit is None or unit == analyte.unit:
        return value
    if analyte.key == "temperature" and unit in ("[degF]", "degF"):
        return (value - 32) * 5 / 9
    factor = analyte.factors.get(unit)
    if factor is None:
        raise UnitError(f"{analyte.name}: unit {unit!r} is not convertible to {analyte.unit}")
    return value * factor
