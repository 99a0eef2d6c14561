"""Rule families of the medication safety review, one function each, with the tables they read.

Every table row names its source. Label thresholds are creatinine clearances (Cockcroft-Gault) except Paxlovid's,
which is eGFR; the review compares them with the record's eGFR and says so in the finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations

from medconsult.knowledge.schema import WeightDose
from medconsult.safety import drugs as v
from medconsult.safety.drugs import Drug, drug, mentioned_classes, parse_drugs, words
from medconsult.safety.models import PlannedDrug, RecordItem, Rule, SafetyContext, SafetyFinding, Severity

ALLERGY_PARAMETER = (
    "Khan DA et al. Drug allergy: a 2022 practice parameter update (AAAAI/ACAAI Joint Task Force on Practice "
    "Parameters), J Allergy Clin Immunol 2022;150:1333-93"
)
QT_SOURCES = (
    "CredibleMeds QTdrugs list (known risk of TdP); Drew BJ et al. AHA/ACCF scientific statement on prevention "
    "of torsade de pointes in hospital settings, Circulation 2010;121:1047-60"
)
_RENAL_PROXY = "label thresholds are creatinine clearance; eGFR stands in for it"


# ---- resolved drugs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    drug: Drug
    entry: PlannedDrug


@dataclass(frozen=True)
class Current:
    drug: Drug
    record: RecordItem


def resolve_plan(entries: list[PlannedDrug]) -> tuple[list[Planned], list[PlannedDrug]]:
    """Known drugs of the plan (a free-text entry may name several) and the entries naming none."""
    planned: list[Planned] = []
    unknown: list[PlannedDrug] = []
    for entry in entries:
        names = parse_drugs(entry.name)
        planned += [Planned(drug(n), entry) for n in names]
        if not names:
            unknown.append(entry)
    return planned, unknown


def resolve_record(items: list[RecordItem]) -> list[Current]:
    """Known drugs among the current medications; unknown ones cannot interact in this review."""
    return [Current(drug(n), item) for item in items for n in parse_drugs(item.text)]


def given_together(a: PlannedDrug, b: PlannedDrug) -> bool:
    """Drugs of two different regimens are alternatives; without a regimen id they are taken as given together."""
    return a.regimen_id is None or b.regimen_id is None or a.regimen_id == b.regimen_id


def _finding(
    rule: Rule, severity: Severity, name: str, message: str, source: str, *refs: str | None
) -> SafetyFinding:
    return SafetyFinding(
        rule=rule,
        severity=severity,
        drug=name,
        message=message,
        evidence=[r for r in refs if r],
        source=source,
    )


# ---- record gap, unknown drug ----------------------------------------------------------------------------------
def record_gap_findings(context: SafetyContext) -> list[SafetyFinding]:
    if context.allergies_known:
        return []
    return [_finding(
        "record-gap", "warn", "all planned drugs",
        "Allergy record unavailable: allergy and cross-reactivity not checked; ask the patient before prescribing.",
        "medconsult safety review: a rule that could not run is reported, never passed",
    )]


def unknown_drug_findings(unknown: list[PlannedDrug]) -> list[SafetyFinding]:
    return [
        _finding(
            "unknown-drug", "warn", entry.name,
            f"'{entry.name}' is not in the drug vocabulary, so it was not checked for allergy, interactions, "
            "renal dosing, pregnancy or duplication.",
            "medconsult safety review vocabulary (medconsult/safety/drugs.py)",
        )
        for entry in unknown
    ]


# ---- allergy and cross-reactivity ------------------------------------------------------------------------------
_SEVERE_REACTION_TEXT = ("anaphyla", "angioedema", "stevens johnson", "epidermal necrolysis", "eosinophilia",
                         "pustulosis")
_SEVERE_REACTION_WORDS = frozenset({"sjs", "ten", "dress", "agep"})
_SEVERE_ADVICE = (
    "severe reaction on record: avoid unless an allergist advises otherwise (e.g. a graded challenge with a "
    "dissimilar side chain)"
)
_NON_SEVERE_ADVICE = "non-severe reaction on record: usually tolerated; confirm the history before giving"


def is_severe(allergy: RecordItem) -> bool:
    """Criticality high, or a severe immediate (anaphylaxis, angioedema) or severe delayed (SJS/TEN, DRESS, AGEP)
    reaction: the 2022 practice parameter treats these histories differently from a benign rash."""
    if (allergy.criticality or "").lower() == "high":
        return True
    for reaction in allergy.reactions:
        text = " ".join(words(reaction))
        if any(s in text for s in _SEVERE_REACTION_TEXT) or _SEVERE_REACTION_WORDS & set(text.split()):
            return True
    return False


@dataclass(frozen=True)
class _Allergen:
    item: RecordItem
    drugs: frozenset[str]  # drugs named in the allergy text
    drug_classes: frozenset[str]  # allergy classes of those drugs
    named_classes: frozenset[str]  # classes named as such ("penicillins", "sulfa")


def _allergens(context: SafetyContext) -> list[_Allergen]:
    found = []
    for item in context.allergies:
        names = parse_drugs(item.text)
        classes = {drug(n).allergy_class for n in names} - {None}
        found.append(
            _Allergen(item, frozenset(names), frozenset(classes), frozenset(mentioned_classes(item.text)))
        )
    return found


def _describe(allergy: RecordItem) -> str:
    detail = f"criticality {allergy.criticality or 'unknown'}"
    if allergy.reactions:
        detail += "; reactions: " + ", ".join(allergy.reactions)
    return f"'{allergy.text}' ({detail})"


def _same_drug_or_class(planned: Drug, allergen: _Allergen) -> str | None:
    """How the planned drug matches the allergy itself (same drug or class), or None."""
    if planned.name in allergen.drugs:
        return "is the drug of"
    named = allergen.named_classes & (planned.groups | {planned.allergy_class})
    if named:
        return f"belongs to {', '.join(sorted(named))}, the class named in"
    # One cephalosporin allergy does not cover the class: side chains differ, so it is a cross-reactivity question.
    cls = planned.allergy_class
    if cls and cls != v.CEPHALOSPORINS and cls in allergen.drug_classes:
        return f"belongs to {cls}, the class of"
    return None


def allergy_findings(planned: list[Planned], context: SafetyContext) -> list[SafetyFinding]:
    if not context.allergies_known:
        return []
    findings, allergens = [], _allergens(context)
    for p in planned:
        for allergen in allergens:
            why = _same_drug_or_class(p.drug, allergen)
            if why:
                findings.append(_finding(
                    "allergy", "block", p.drug.name,
                    f"{p.drug.name} {why} the recorded allergy {_describe(allergen.item)}.",
                    f"Recorded allergy; same-drug and same-class avoidance per {ALLERGY_PARAMETER}",
                    allergen.item.resource,
                ))
    return findings


@dataclass(frozen=True)
class CrossReactivity:
    allergy_class: str
    planned_class: str
    risk: str  # the quoted cross-reactivity


CROSS_REACTIVITY: tuple[CrossReactivity, ...] = (
    CrossReactivity(
        v.PENICILLINS, v.CEPHALOSPORINS, "about 2% or less, mostly through shared R1 side chains"
    ),
    CrossReactivity(v.PENICILLINS, v.CARBAPENEMS, "under 1%"),
    CrossReactivity(v.CEPHALOSPORINS, v.CEPHALOSPORINS, "depends on side-chain similarity, not checked here"),
)


def _cross_reaction(planned: Drug, allergen: _Allergen) -> CrossReactivity | None:
    classes = allergen.drug_classes | allergen.named_classes
    return next(
        (c for c in CROSS_REACTIVITY if c.allergy_class in classes and c.planned_class in planned.groups),
        None,
    )


def cross_reactivity_findings(planned: list[Planned], context: SafetyContext) -> list[SafetyFinding]:
    """Penicillin allergy -> cephalosporins and carbapenems; one cephalosporin -> the others. Warn, block after a
    severe or high-criticality reaction (the physician may still choose a graded challenge)."""
    if not context.allergies_known:
        return []
    findings, allergens = [], _allergens(context)
    for p in planned:
        for allergen in allergens:
            cross = _cross_reaction(p.drug, allergen)
            if cross is None or _same_drug_or_class(p.drug, allergen):
                continue
            severe = is_severe(allergen.item)
            advice = _SEVERE_ADVICE if severe else _NON_SEVERE_ADVICE
            findings.append(_finding(
                "cross-reactivity", "block" if severe else "warn", p.drug.name,
                f"{p.drug.name} ({cross.planned_class}) with recorded allergy {_describe(allergen.item)} to "
                f"{cross.allergy_class}: cross-reactivity {cross.risk}; {advice}.",
                ALLERGY_PARAMETER, allergen.item.resource,
            ))
    return findings


# ---- interactions ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interaction:
    planned: frozenset[str]  # generic names or groups of the planned drug
    other: frozenset[str]  # generic names or groups of the drug it meets (current or also planned)
    severity: Severity
    effect: str  # what happens and what to do
    mechanism: str
    source: str


def _row(
    planned: set[str], other: set[str], severity: Severity, effect: str, mechanism: str, source: str
) -> Interaction:
    return Interaction(frozenset(planned), frozenset(other), severity, effect, mechanism, source)


_STRONG_CYP3A_INHIBITORS = {"clarithromycin", "nirmatrelvir-ritonavir", "ritonavir"}
_PAXLOVID = {"nirmatrelvir-ritonavir", "ritonavir"}
_PAXLOVID_LABEL = "Paxlovid US prescribing information (Contraindications; Drug Interactions table)"
_CHELATION = "chelation with di- and trivalent cations in the gut"

# Major interactions only. QT-prolonging pairs are computed from the QT group (_qt_pair_finding), not listed here.
INTERACTIONS: tuple[Interaction, ...] = (
    _row({"sulfamethoxazole-trimethoprim", "metronidazole"}, {"warfarin"}, "warn",
         "INR rise and bleeding risk: monitor INR closely and adjust warfarin",
         "CYP2C9 inhibition slows S-warfarin clearance",
         "Coumadin (warfarin) US label, Drug Interactions; Bactrim and Flagyl US labels"),
    _row({"clarithromycin", "erythromycin"}, {"warfarin"}, "warn",
         "INR rise and bleeding risk: monitor INR closely", "CYP3A4 inhibition slows R-warfarin clearance",
         "Coumadin (warfarin) US label, Drug Interactions; Biaxin US label"),
    _row({"azithromycin", v.FLUOROQUINOLONES}, {"warfarin"}, "warn",
         "INR rise and bleeding reported: monitor INR closely", "not established (case reports and label warnings)",
         "Coumadin (warfarin) US label, Drug Interactions; Zithromax and fluoroquinolone US labels"),
    _row(_STRONG_CYP3A_INHIBITORS | {"erythromycin"}, {"simvastatin", "lovastatin"}, "block",
         "contraindicated (myopathy, rhabdomyolysis): choose another antibiotic/antiviral or hold the statin",
         "CYP3A4 inhibition raises statin exposure many-fold",
         "Zocor and Mevacor US labels (Contraindications); Biaxin and Paxlovid US labels"),
    _row({"clarithromycin"}, {"atorvastatin"}, "warn",
         "limit atorvastatin to 20 mg daily or hold it during the course",
         "CYP3A4 inhibition raises atorvastatin exposure", "Lipitor US label, Drug Interactions"),
    _row(_PAXLOVID, {"atorvastatin", "rosuvastatin"}, "warn",
         "consider holding the statin during the 5-day course", "CYP3A4 / transporter inhibition", _PAXLOVID_LABEL),
    _row(_PAXLOVID, {"amiodarone", "dronedarone", "quinidine"}, "block",
         "contraindicated (serious arrhythmias)", "CYP3A inhibition raises antiarrhythmic exposure", _PAXLOVID_LABEL),
    _row(_PAXLOVID, {v.STRONG_CYP3A_INDUCERS}, "block",
         "contraindicated (loss of antiviral effect and resistance)",
         "CYP3A induction lowers nirmatrelvir and ritonavir exposure", _PAXLOVID_LABEL),
    _row(_PAXLOVID, {"rivaroxaban"}, "block",
         "avoid: bleeding risk", "combined P-gp and strong CYP3A inhibition raises rivaroxaban exposure",
         f"{_PAXLOVID_LABEL}; Xarelto US label, Drug Interactions"),
    _row(_PAXLOVID, {"apixaban"}, "warn",
         "reduce apixaban by 50% if on 5 or 10 mg twice daily; avoid if on 2.5 mg twice daily",
         "combined P-gp and strong CYP3A inhibition raises apixaban exposure",
         f"{_PAXLOVID_LABEL}; Eliquis US label, Drug Interactions"),
    _row(_STRONG_CYP3A_INHIBITORS, {v.CALCINEURIN_INHIBITORS}, "warn",
         "immunosuppressant levels rise: monitor levels closely or avoid when monitoring is not feasible",
         "CYP3A inhibition", f"{_PAXLOVID_LABEL}; Biaxin and Prograf US labels"),
    _row(_STRONG_CYP3A_INHIBITORS, {"colchicine"}, "warn",
         "contraindicated with renal or hepatic impairment; otherwise reduce the colchicine dose",
         "CYP3A4 and P-gp inhibition raises colchicine exposure (fatal toxicity reported)",
         "Biaxin and Paxlovid US labels; Colcrys US label"),
    _row(_STRONG_CYP3A_INHIBITORS, {"digoxin"}, "warn",
         "digoxin toxicity: monitor digoxin levels", "P-gp inhibition raises digoxin levels",
         "Biaxin and Paxlovid US labels, Drug Interactions"),
    _row({"clarithromycin", "erythromycin"}, {"verapamil"}, "warn",
         "hypotension and bradyarrhythmia reported: monitor", "CYP3A4 inhibition raises verapamil levels",
         "Biaxin US label, Drug Interactions"),
    _row({v.TETRACYCLINES}, {v.POLYVALENT_CATIONS}, "warn",
         "absorption falls: give doxycycline well apart from the cation", _CHELATION, "Doxycycline US label"),
    _row({"levofloxacin"}, {v.POLYVALENT_CATIONS}, "warn",
         "absorption falls: give levofloxacin 2 h before or 2 h after the cation", _CHELATION, "Levaquin US label"),
    _row({"ciprofloxacin"}, {v.POLYVALENT_CATIONS}, "warn",
         "absorption falls: give ciprofloxacin 2 h before or 6 h after the cation", _CHELATION, "Cipro US label"),
    _row({"moxifloxacin"}, {v.POLYVALENT_CATIONS}, "warn",
         "absorption falls: give moxifloxacin 4 h before or 8 h after the cation", _CHELATION, "Avelox US label"),
    _row({"sulfamethoxazole-trimethoprim", "trimethoprim"}, {v.ACE_INHIBITORS, v.ARBS, v.MRAS}, "warn",
         "hyperkalaemia: check potassium within a few days or choose another antibiotic",
         "trimethoprim blocks ENaC in the distal nephron (amiloride-like potassium sparing)",
         "Bactrim US label (hyperkalemia); Antoniou T et al., Arch Intern Med 2010 and CMAJ 2015"),
    _row({"sulfamethoxazole-trimethoprim", "trimethoprim"}, {"methotrexate"}, "block",
         "methotrexate toxicity (pancytopenia): avoid the combination",
         "sulfonamide displaces methotrexate; both reduce its renal clearance and add antifolate effect",
         "Bactrim US label, Drug Interactions"),
    _row({"linezolid"}, {v.SSRIS}, "warn",
         "serotonin syndrome: give only with close observation, or choose another agent",
         "linezolid is a reversible MAO inhibitor", "Zyvox US label (serotonin syndrome)"),
)


def _matches(d: Drug, selectors: frozenset[str]) -> bool:
    return d.name in selectors or bool(d.groups & selectors)


@dataclass(frozen=True)
class _Partner:
    drug: Drug
    label: str  # how the finding names it
    resource: str | None


def _partners(p: Planned, later: list[Planned], current: list[Current]) -> Iterator[_Partner]:
    """What a planned drug meets: current medications, and later drugs of the same regimen (each pair once)."""
    for c in current:
        if c.drug.name != p.drug.name:
            yield _Partner(c.drug, f"current medication '{c.record.text}'", c.record.resource)
    for q in later:
        if q.drug.name != p.drug.name and given_together(p.entry, q.entry):
            yield _Partner(q.drug, "also in the plan", None)


def _table_findings(p: Planned, partner: _Partner) -> Iterator[SafetyFinding]:
    for row in INTERACTIONS:
        for subject, obj in ((p.drug, partner.drug), (partner.drug, p.drug)):
            if _matches(subject, row.planned) and _matches(obj, row.other):
                yield _finding(
                    "interaction", row.severity, p.drug.name,
                    f"{p.drug.name} with {partner.drug.name} ({partner.label}): {row.effect}; mechanism: "
                    f"{row.mechanism}.",
                    row.source, partner.resource,
                )


def _qt_pair_finding(p: Planned, partner: _Partner) -> SafetyFinding | None:
    if not (v.QT_KNOWN_RISK in p.drug.groups and v.QT_KNOWN_RISK in partner.drug.groups):
        return None
    avoid = (
        v.AVOID_WITH_CLASS_IA_III in p.drug.groups and v.CLASS_IA_III_ANTIARRHYTHMICS in partner.drug.groups
    ) or (
        v.AVOID_WITH_CLASS_IA_III in partner.drug.groups and v.CLASS_IA_III_ANTIARRHYTHMICS in p.drug.groups
    )
    advice = ("the label says to avoid this combination with class IA/III antiarrhythmics" if avoid
              else "check a baseline ECG and potassium/magnesium, or choose a drug without QT risk")
    return _finding(
        "interaction", "block" if avoid else "warn", p.drug.name,
        f"{p.drug.name} with {partner.drug.name} ({partner.label}): both prolong the QT interval (known risk of "
        f"torsades de pointes); {advice}.",
        f"{QT_SOURCES}; {p.drug.name} US label (QT prolongation)", partner.resource,
    )


def interaction_findings(planned: list[Planned], current: list[Current]) -> list[SafetyFinding]:
    findings: list[SafetyFinding] = []
    for i, p in enumerate(planned):
        for partner in _partners(p, planned[i + 1 :], current):
            findings += _table_findings(p, partner)
            qt = _qt_pair_finding(p, partner)
            if qt:
                findings.append(qt)
    return findings


QTC_BLOCK_MS = 500  # TdP risk rises steeply above 500 ms (AHA/ACCF 2010)
QTC_WARN_MS = 470  # upper normal limit (99th percentile) for men; 480 ms for women


def qtc_findings(planned: list[Planned], context: SafetyContext) -> list[SafetyFinding]:
    qtc = context.qtc_ms
    if qtc is None or qtc < QTC_WARN_MS:
        return []
    severity: Severity = "block" if qtc >= QTC_BLOCK_MS else "warn"
    limit = QTC_BLOCK_MS if severity == "block" else QTC_WARN_MS
    return [
        _finding(
            "interaction", severity, p.drug.name,
            f"QTc {qtc:g} ms (at or above {limit} ms) and {p.drug.name} prolongs the QT interval (known risk of "
            "torsades de pointes): choose a drug without QT risk or monitor the ECG.",
            QT_SOURCES,
        )
        for p in planned
        if v.QT_KNOWN_RISK in p.drug.groups
    ]


# ---- renal dosing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenalBand:
    limit: float  # applies below the limit (at or below when inclusive), in mL/min
    severity: Severity
    advice: str
    inclusive: bool = False

    def applies(self, egfr: float) -> bool:
        return egfr <= self.limit if self.inclusive else egfr < self.limit

    @property
    def condition(self) -> str:
        return f"{'at or below' if self.inclusive else 'below'} {self.limit:g}"


@dataclass(frozen=True)
class RenalRule:
    bands: tuple[RenalBand, ...]  # least to most restrictive
    source: str


def _renal(source: str, *bands: RenalBand) -> RenalRule:
    return RenalRule(bands, source)


def _band(limit: float, advice: str, severity: Severity = "warn", inclusive: bool = False) -> RenalBand:
    return RenalBand(limit, severity, advice, inclusive)


_NSAID_RENAL = _renal(
    "American Geriatrics Society 2023 Beers Criteria (drugs to avoid or reduce by kidney function); Toradol label",
    _band(30, "avoid NSAIDs (kidney injury, hyperkalaemia); ketorolac is contraindicated in advanced renal "
              "impairment"),
)
_LEVELS = "renally cleared: individualise the dose by serum level monitoring"
_AMINOGLYCOSIDE_RENAL = _renal(
    "Aminoglycoside US labels (dosage in impaired renal function, guided by serum levels); the 60 mL/min prompt is "
    "this review's, not a label cut-off", _band(60, _LEVELS + " and extend the interval"),
)

RENAL_RULES: dict[str, RenalRule] = {
    "levofloxacin": _renal(
        "Levaquin (levofloxacin) US label, dosage in renal impairment",
        _band(50, "CrCl 20-49: 750 mg every 48 h (750 mg regimen) or 500 mg then 250 mg every 24 h (500 mg regimen)"),
        _band(20, "CrCl 10-19 or dialysis: 750 mg then 500 mg every 48 h, or 500 mg then 250 mg every 48 h"),
    ),
    "ciprofloxacin": _renal(
        "Cipro (ciprofloxacin) US label, dosage in renal impairment",
        _band(50, "CrCl 30-50: oral 250-500 mg every 12 h", inclusive=True),
        _band(30, "CrCl 5-29: oral 250-500 mg every 18 h (IV 200-400 mg every 18-24 h); dialysis: every 24 h after "
                  "dialysis"),
    ),
    "amoxicillin": _renal(
        "Amoxicillin US label, dosage in renal impairment",
        _band(30, "GFR 10-30: 250-500 mg every 12 h and no 875 mg tablets; GFR under 10: every 24 h", inclusive=True),
    ),
    "amoxicillin-clavulanate": _renal(
        "Augmentin and Augmentin XR US labels, dosage in renal impairment",
        _band(30, "GFR under 30: no 875 mg or extended-release tablets; 250-500 mg every 12 h (GFR 10-30) or every "
                  "24 h (under 10)"),
    ),
    "ampicillin-sulbactam": _renal(
        "Unasyn US label, dosage in renal impairment",
        _band(30, "CrCl 15-29: every 12 h; CrCl 5-14: every 24 h"),
    ),
    "piperacillin-tazobactam": _renal(
        "Zosyn US label, dosage in renal impairment",
        _band(40, "CrCl 20-40: 2.25 g every 6 h (nosocomial pneumonia 3.375 g every 6 h); under 20: 2.25 g every "
                  "8 h (nosocomial pneumonia 2.25 g every 6 h)", inclusive=True),
    ),
    "cefazolin": _renal(
        "Cefazolin US label, dosage in renal impairment",
        _band(55, "CrCl 35-54: full dose at least 8 h apart; 11-34: half the dose every 12 h; 10 or less: half the "
                  "dose every 18-24 h"),
    ),
    "cefuroxime": _renal(
        "Zinacef and Ceftin US labels, dosage in renal impairment",
        _band(30, "tablets: CrCl 10-29 standard dose every 24 h, under 10 every 48 h; IV: CrCl 10-20 750 mg every "
                  "12 h, under 10 750 mg every 24 h"),
    ),
    "cefpodoxime": _renal("Cefpodoxime US label, dosage in renal impairment",
                          _band(30, "CrCl under 30: give the dose every 24 h")),
    "cefdinir": _renal("Omnicef (cefdinir) US label, dosage in renal impairment",
                       _band(30, "CrCl under 30: 300 mg once daily")),
    "ceftazidime": _renal(
        "Fortaz (ceftazidime) US label, dosage in renal impairment",
        _band(50, "CrCl 31-50: 1 g every 12 h; 16-30: 1 g every 24 h; 6-15: 500 mg every 24 h; under 6: 500 mg "
                  "every 48 h", inclusive=True),
    ),
    "cefepime": _renal(
        "Maxipime (cefepime) US label, dosage in renal impairment",
        _band(60, "CrCl 30-60, 11-29 and 10 or less each need a longer interval or a lower dose (label table)",
              inclusive=True),
    ),
    "ceftaroline": _renal(
        "Teflaro (ceftaroline) US label, dosage in renal impairment",
        _band(50, "CrCl 31-50: 400 mg every 12 h; 16-30: 300 mg every 12 h; 15 or less: 200 mg every 12 h",
              inclusive=True),
    ),
    "meropenem": _renal(
        "Merrem (meropenem) US label, dosage in renal impairment",
        _band(50, "CrCl 26-50: usual dose every 12 h; 10-25: half the dose every 12 h; under 10: half the dose "
                  "every 24 h", inclusive=True),
    ),
    "ertapenem": _renal("Invanz (ertapenem) US label, dosage in renal impairment",
                        _band(30, "CrCl 30 or less and haemodialysis: 500 mg once daily", inclusive=True)),
    "imipenem-cilastatin": _renal(
        "Primaxin US label, dosage in renal impairment",
        _band(90, "CrCl under 90: reduced doses per the label table; under 15 not recommended unless haemodialysis "
                  "is started within 48 h"),
    ),
    "aztreonam": _renal("Azactam (aztreonam) US label, dosage in renal impairment",
                        _band(30, "CrCl 10-30: usual loading dose, then half; under 10: then a quarter",
                              inclusive=True)),
    "clarithromycin": _renal("Biaxin (clarithromycin) US label, dosage in renal impairment",
                             _band(30, "CrCl under 30: halve the dose or double the interval")),
    "sulfamethoxazole-trimethoprim": _renal(
        "Bactrim US label, dosage in renal impairment",
        _band(30, "CrCl 15-30: half the usual regimen", inclusive=True),
        _band(15, "CrCl under 15: not recommended", "block"),
    ),
    "trimethoprim": _renal(
        "Trimethoprim tablets US label, dosage in renal impairment",
        _band(30, "CrCl 15-30: 50 mg every 12 h", inclusive=True),
        _band(15, "CrCl under 15: not recommended", "block"),
    ),
    "nitrofurantoin": _renal(
        "Macrobid US label (Contraindications: CrCl under 60); American Geriatrics Society 2023 Beers Criteria",
        _band(60, "the label contraindicates CrCl under 60; Beers allows short courses down to CrCl 30"),
        _band(30, "CrCl under 30: avoid (urine levels too low to work, toxicity rises)", "block"),
    ),
    "vancomycin": _renal(
        "Rybak MJ et al., ASHP/IDSA/PIDS/SIDP vancomycin monitoring consensus guideline, Am J Health Syst Pharm "
        "2020;77:835-64 (AUC-guided dosing); the 60 mL/min prompt is this review's, not a label cut-off",
        _band(60, _LEVELS + " (AUC-guided)"),
    ),
    "gentamicin": _AMINOGLYCOSIDE_RENAL,
    "tobramycin": _AMINOGLYCOSIDE_RENAL,
    "amikacin": _AMINOGLYCOSIDE_RENAL,
    "oseltamivir": _renal(
        "Tamiflu (oseltamivir) US label, dosage in renal impairment",
        _band(60, "CrCl 31-60: treatment 30 mg twice daily (prophylaxis 30 mg once daily)", inclusive=True),
        _band(30, "CrCl 11-30: treatment 30 mg once daily (prophylaxis 30 mg every other day)", inclusive=True),
        _band(10, "CrCl 10 or less: 30 mg after each haemodialysis session; not recommended in end-stage renal "
                  "disease without dialysis", inclusive=True),
    ),
    "nirmatrelvir-ritonavir": _renal(
        "Paxlovid US label (dosage by eGFR; severe renal impairment dosing replaced the earlier 'not recommended')",
        _band(60, "eGFR 30 to under 60: 150 mg nirmatrelvir with 100 mg ritonavir twice daily for 5 days"),
        _band(30, "eGFR under 30 or haemodialysis: 300/100 mg on day 1, then 150/100 mg once daily on days 2-5 "
                  "(after dialysis on dialysis days)"),
    ),
    "acyclovir": _renal(
        "Zovirax (acyclovir) US labels, dosage in renal impairment",
        _band(50, "IV: CrCl 25-50 every 12 h, 10-25 every 24 h, under 10 half the dose every 24 h; oral: reduce "
                  "under 25 (zoster) or 10 (herpes simplex)"),
    ),
    "valacyclovir": _renal(
        "Valtrex (valacyclovir) US label, dosage in renal impairment",
        _band(50, "zoster: CrCl 30-49 1 g every 12 h, 10-29 1 g every 24 h, under 10 500 mg every 24 h"),
    ),
    "fluconazole": _renal(
        "Diflucan (fluconazole) US label, dosage in renal impairment",
        _band(50, "CrCl 50 or less without dialysis: half the dose after the loading dose; dialysis: full dose after "
                  "each session", inclusive=True),
    ),
    "enoxaparin": _renal(
        "Lovenox (enoxaparin) US label, dosage in severe renal impairment",
        _band(30, "CrCl under 30: prophylaxis 30 mg once daily; treatment 1 mg/kg once daily"),
    ),
    "ibuprofen": _NSAID_RENAL,
    "naproxen": _NSAID_RENAL,
    "ketorolac": _NSAID_RENAL,
}

# Checked: no renal adjustment in the label, so neither a renal finding nor "renal function unknown".
NO_RENAL_ADJUSTMENT: dict[str, str] = {
    "ceftriaxone": "Rocephin US label",
    "azithromycin": "Zithromax US label (GFR 10-80; use caution under 10)",
    "doxycycline": "Vibramycin US label",
    "moxifloxacin": "Avelox US label",
    "linezolid": "Zyvox US label",
    "clindamycin": "Cleocin US label",
    "remdesivir": "Veklury US label since July 2023: any degree of renal impairment, dialysis included "
                  "(before: not recommended under eGFR 30)",
    "molnupiravir": "Lagevrio EUA fact sheet",
}


def _renal_finding(p: Planned, rule: RenalRule, context: SafetyContext) -> SafetyFinding | None:
    egfr = context.egfr
    if egfr is None:
        limit = max(b.limit for b in rule.bands)
        return _finding(
            "renal", "warn", p.drug.name,
            f"Renal function unknown: {p.drug.name} needs a dose change when creatinine clearance is below about "
            f"{limit:g} mL/min; check creatinine before dosing.",
            rule.source,
        )
    band = next((b for b in reversed(rule.bands) if b.applies(egfr)), None)
    if band is None:
        return None
    return _finding(
        "renal", band.severity, p.drug.name,
        f"eGFR {egfr:g} mL/min/1.73 m2 ({band.condition}) for {p.drug.name}: {band.advice} ({_RENAL_PROXY}).",
        rule.source, context.egfr_resource,
    )


def renal_findings(planned: list[Planned], context: SafetyContext) -> list[SafetyFinding]:
    found = (
        _renal_finding(p, RENAL_RULES[p.drug.name], context) for p in planned if p.drug.name in RENAL_RULES
    )
    return [f for f in found if f]


# ---- pregnancy -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PregnancyRule:
    severity: Severity
    concern: str
    source: str


_ACOG_717 = "ACOG Committee Opinion No. 717, Sulfonamides, nitrofurantoin, and risk of birth defects (2017)"
_RAS_FETAL = PregnancyRule("block", "fetal toxicity (boxed warning): stop as soon as pregnancy is detected",
                           "ACE inhibitor and ARB US labels (boxed warning: fetal toxicity)")
_FOLATE = PregnancyRule(
    "warn", "folate antagonist: avoid in the first trimester and near term (kernicterus) unless no suitable "
            "alternative exists", f"{_ACOG_717}; Bactrim US label, Use in Specific Populations",
)

# Keyed by generic name or group; looked up only when the record says the patient is pregnant.
PREGNANCY_RULES: dict[str, PregnancyRule] = {
    v.FLUOROQUINOLONES: PregnancyRule(
        "warn", "usually avoided in pregnancy when an alternative exists (arthropathy in immature animals); "
                "observational data have not shown a clear rise in major malformations",
        "Levofloxacin, ciprofloxacin and moxifloxacin US labels, Pregnancy; UK Teratology Information Service"),
    v.TETRACYCLINES: PregnancyRule(
        "warn", "permanent tooth discolouration and inhibited bone growth when used in the second half of "
                "pregnancy (gestational age is not in the record extract)",
        "Doxycycline US label (Warnings: tooth development; Pregnancy)"),
    "ribavirin": PregnancyRule("block", "contraindicated: teratogenic and embryocidal (boxed warning)",
                               "Ribavirin US labels (Contraindications; boxed warning)"),
    "sulfamethoxazole-trimethoprim": _FOLATE,
    "trimethoprim": _FOLATE,
    "nitrofurantoin": PregnancyRule(
        "warn", "contraindicated at term (38-42 weeks: neonatal haemolytic anaemia); first trimester only without "
                "a suitable alternative", f"Macrobid US label (Contraindications); {_ACOG_717}"),
    "clarithromycin": PregnancyRule(
        "warn", "the label advises against use in pregnancy unless no alternative is appropriate (adverse fetal "
                "effects in animals)", "Biaxin US label (Warnings: embryo-fetal toxicity)"),
    "molnupiravir": PregnancyRule("block", "not recommended in pregnancy (embryo-fetal toxicity in animals)",
                                  "Lagevrio EUA fact sheet for healthcare providers"),
    v.AMINOGLYCOSIDES: PregnancyRule("warn", "can cause fetal harm (eighth-nerve toxicity after in-utero exposure)",
                                     "Aminoglycoside US labels (Warnings: pregnancy)"),
    v.ACE_INHIBITORS: _RAS_FETAL,
    v.ARBS: _RAS_FETAL,
    "warfarin": PregnancyRule("block", "contraindicated in pregnancy except with mechanical heart valves at high "
                                       "thromboembolic risk", "Coumadin US label (Contraindications)"),
    "methotrexate": PregnancyRule("block", "contraindicated in pregnancy for non-cancer use (embryo-fetal toxicity)",
                                  "Methotrexate US labels (Contraindications; boxed warning)"),
}


def _pregnancy_rule(d: Drug) -> PregnancyRule | None:
    keys = [d.name, *sorted(d.groups)]
    return next((PREGNANCY_RULES[k] for k in keys if k in PREGNANCY_RULES), None)


def pregnancy_findings(planned: list[Planned], context: SafetyContext) -> list[SafetyFinding]:
    """Only when the record says pregnant: an unknown status does not raise findings (no nagging)."""
    if context.pregnant is not True:
        return []
    findings = []
    for p in planned:
        rule = _pregnancy_rule(p.drug)
        if rule:
            findings.append(_finding("pregnancy", rule.severity, p.drug.name,
                                     f"Pregnant: {p.drug.name} - {rule.concern}.", rule.source,
                                     context.pregnancy_resource))
    return findings


# ---- duplicate therapy -----------------------------------------------------------------------------------------
DUPLICATE_CLASSES = frozenset({
    v.BETA_LACTAMS, v.MACROLIDES, v.FLUOROQUINOLONES, v.TETRACYCLINES, v.NEURAMINIDASE_INHIBITORS,
    v.SYSTEMIC_CORTICOSTEROIDS, v.NSAIDS, v.ANTICOAGULANTS, v.STATINS, v.ACE_INHIBITORS, v.ARBS,
})
_DUPLICATE_SOURCE = "Therapeutic duplication check (medication reconciliation); same class in one regimen"


def _shared_class(a: Drug, b: Drug) -> str | None:
    return next(iter(sorted(a.groups & b.groups & DUPLICATE_CLASSES)), None)


def _plan_duplicates(planned: list[Planned]) -> Iterator[SafetyFinding]:
    seen: set[tuple[str, str]] = set()
    for p, q in combinations(planned, 2):
        pair = tuple(sorted((p.drug.name, q.drug.name)))
        shared = _shared_class(p.drug, q.drug)
        if p.drug.name == q.drug.name or not shared or pair in seen or not given_together(p.entry, q.entry):
            continue
        seen.add(pair)
        yield _finding("duplicate", "warn", p.drug.name,
                       f"{p.drug.name} and {q.drug.name} are both {shared} in the same regimen: keep one unless the "
                       "combination is intended.", _DUPLICATE_SOURCE)


def _current_duplicates(planned: list[Planned], current: list[Current]) -> Iterator[SafetyFinding]:
    for p in planned:
        for c in current:
            shared = "the same drug" if p.drug.name == c.drug.name else _shared_class(p.drug, c.drug)
            if shared:
                what = shared if shared == "the same drug" else f"also {shared}"
                yield _finding("duplicate", "warn", p.drug.name,
                               f"{p.drug.name} is planned while the patient takes '{c.record.text}' ({what}): "
                               "continue, replace or stop one of them.", _DUPLICATE_SOURCE,
                               c.record.resource)


def duplicate_findings(planned: list[Planned], current: list[Current]) -> list[SafetyFinding]:
    return [*_plan_duplicates(planned), *_current_duplicates(planned, current)]


# ---- order -----------------------------------------------------------------------------------------------------
_RULE_ORDER = ("record-gap", "allergy", "cross-reactivity", "interaction", "renal", "pregnancy", "duplicate",
               "weight-dose", "unknown-drug")


def ordered(findings: Iterable[SafetyFinding]) -> list[SafetyFinding]:
    """Blocks first, then by rule family and drug; identical findings (same drug from two actions) once."""
    unique = {(f.rule, f.severity, f.drug, f.message, tuple(f.evidence)): f for f in findings}
    return sorted(
        unique.values(),
        key=lambda f: (f.severity != "block", _RULE_ORDER.index(f.rule), f.drug, f.message),
    )


# ---- doses by weight (children) ---------------------------------------------------------------------------------
WEIGHT_DOSE_SOURCE = (
    "BNF for Children / IDSA-PIDS 2011 paediatric CAP dosing tables: doses in children are by body weight, capped "
    "at the adult maximum"
)


def weight_dose_findings(planned: list[Planned], context: SafetyContext) -> list[SafetyFinding]:
    """For a child: every planned drug needs a dose by weight; without a recorded weight the dose cannot be worked
    out or checked, and the finding gives the per-kg dose and its ceiling to use once the child is weighed."""
    if context.population != "paediatric":
        return []
    findings = []
    for p in planned:
        name = p.drug.name
        if p.entry.per_kg is None:
            findings.append(_finding(
                "weight-dose", "block", name,
                f"{name} has no dose by weight in the plan: an adult fixed dose must not be given to a child.",
                WEIGHT_DOSE_SOURCE,
            ))
            continue
        dose = WeightDose.model_validate(p.entry.per_kg)
        if context.weight_kg is None:
            findings.append(_finding(
                "weight-dose", "warn", name,
                f"Weight not recorded: {name} {dose.text()}, {dose.doses_per_day} doses a day; weigh the child "
                "and work out the dose before prescribing.", WEIGHT_DOSE_SOURCE,
            ))
            continue
        mg = dose.dose_mg(context.weight_kg)
        capped = mg < dose.mg_per_kg * context.weight_kg
        findings.append(_finding(
            "weight-dose", "warn", name,
            f"{name} for {context.weight_kg:g} kg: {mg:g} mg per dose, {dose.doses_per_day} doses a day "
            f"({dose.text()}{'; capped at the maximum' if capped else ''}).",
            WEIGHT_DOSE_SOURCE, context.weight_resource,
        ))
    return findings
