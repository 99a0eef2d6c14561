"""Drug vocabulary for the medication safety review: generic names, brand names and synonyms, drug groups.

Names are matched on lower-case word sequences, so "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet",
"amoxicillin-clavulanate", "Amoxicillin/clavulanic acid" and "Augmentin" all resolve to amoxicillin-clavulanate.
A group is a drug class ("macrolides") or a property a rule keys on ("known risk of torsades de pointes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

# ---- groups -----------------------------------------------------------------------------------------------
PENICILLINS = "penicillins"
CEPHALOSPORINS = "cephalosporins"
CARBAPENEMS = "carbapenems"
MONOBACTAMS = "monobactams"
BETA_LACTAMS = "beta-lactams"  # penicillins, cephalosporins, carbapenems; aztreonam is kept apart (see below)
MACROLIDES = "macrolides"
FLUOROQUINOLONES = "fluoroquinolones"
TETRACYCLINES = "tetracyclines"
SULFONAMIDE_ANTIBIOTICS = "sulfonamide antibiotics"
AMINOGLYCOSIDES = "aminoglycosides"
GLYCOPEPTIDES = "glycopeptides"
NEURAMINIDASE_INHIBITORS = "neuraminidase inhibitors"
SYSTEMIC_CORTICOSTEROIDS = "systemic corticosteroids"
NSAIDS = "NSAIDs"
ANTICOAGULANTS = "anticoagulants"
STATINS = "statins"
ACE_INHIBITORS = "ACE inhibitors"
ARBS = "angiotensin receptor blockers"
MRAS = "mineralocorticoid receptor antagonists"
SSRIS = "SSRIs"
CALCINEURIN_INHIBITORS = "calcineurin inhibitors"
STRONG_CYP3A_INDUCERS = "strong CYP3A inducers"
POLYVALENT_CATIONS = "polyvalent cations"
# CredibleMeds QTdrugs "Known Risk of TdP" category (only the drugs listed in this vocabulary).
QT_KNOWN_RISK = "known risk of torsades de pointes"
CLASS_IA_III_ANTIARRHYTHMICS = "class IA/III antiarrhythmics"
# Labels of these say to avoid them with class IA/III antiarrhythmics (QT), rather than only to weigh the risk.
AVOID_WITH_CLASS_IA_III = "avoid with class IA/III antiarrhythmics"

# The classes within which an allergy to one member counts as an allergy to all (same-class rule).
ALLERGY_CLASSES = frozenset({
    PENICILLINS, CEPHALOSPORINS, CARBAPENEMS, MONOBACTAMS, MACROLIDES, FLUOROQUINOLONES, TETRACYCLINES,
    SULFONAMIDE_ANTIBIOTICS, AMINOGLYCOSIDES, ACE_INHIBITORS,
})


@dataclass(frozen=True)
class Drug:
    name: str  # generic name, lower case; combinations joined by "-"
    groups: frozenset[str]
    synonyms: tuple[str, ...] = ()  # brand names, abbreviations, other spellings seen in records

    @property
    def allergy_class(self) -> str | None:
        return next((g for g in sorted(self.groups) if g in ALLERGY_CLASSES), None)


def _drug(name: str, groups: tuple[str, ...] = (), synonyms: tuple[str, ...] = ()) -> Drug:
    return Drug(name=name, groups=frozenset(groups), synonyms=synonyms)


_PEN = (PENICILLINS, BETA_LACTAMS)
_CEPH = (CEPHALOSPORINS, BETA_LACTAMS)
_CARB = (CARBAPENEMS, BETA_LACTAMS)
_QT = QT_KNOWN_RISK
_FQ = (FLUOROQUINOLONES, _QT, AVOID_WITH_CLASS_IA_III)
_AA = (CLASS_IA_III_ANTIARRHYTHMICS, _QT)

VOCABULARY: tuple[Drug, ...] = (
    # penicillins
    _drug("penicillin", _PEN, ("penicillin v", "penicillin g", "penicillin vk", "pen vk", "pcn", "benzylpenicillin",
                               "phenoxymethylpenicillin", "bicillin", "benzathine penicillin")),
    _drug("amoxicillin", _PEN, ("amoxil", "amoxycillin", "amox")),
    _drug("amoxicillin-clavulanate", _PEN, ("augmentin", "co amoxiclav", "amoxiclav")),
    _drug("ampicillin", _PEN),
    _drug("ampicillin-sulbactam", _PEN, ("unasyn",)),
    _drug("piperacillin-tazobactam", _PEN, ("zosyn", "tazocin", "pip tazo", "piptazo")),
    # cephalosporins
    _drug("cefazolin", _CEPH, ("ancef", "cefazoline")),
    _drug("cephalexin", _CEPH, ("cefalexin", "keflex")),
    _drug("cefaclor", _CEPH),
    _drug("cefuroxime", _CEPH, ("zinacef", "ceftin")),
    _drug("cefoxitin", _CEPH),
    _drug("cefpodoxime", _CEPH),
    _drug("cefdinir", _CEPH, ("omnicef",)),
    _drug("cefixime", _CEPH, ("suprax",)),
    _drug("ceftriaxone", _CEPH, ("rocephin",)),
    _drug("cefotaxime", _CEPH, ("claforan",)),
    _drug("ceftazidime", _CEPH, ("fortaz", "tazicef")),
    _drug("cefepime", _CEPH, ("maxipime",)),
    _drug("ceftaroline", _CEPH, ("teflaro",)),
    # carbapenems, monobactam: aztreonam shares no cross-reactivity with penicillins, so it is not a beta-lactam
    # for the allergy rules (2022 drug allergy practice parameter); ceftazidime shares its side chain.
    _drug("meropenem", _CARB, ("merrem",)),
    _drug("ertapenem", _CARB, ("invanz",)),
    _drug("imipenem-cilastatin", _CARB, ("primaxin",)),
    _drug("aztreonam", (MONOBACTAMS,), ("azactam",)),
    # macrolides
    _drug("azithromycin", (MACROLIDES, _QT), ("zithromax", "z pak", "zpak", "zmax", "azithro")),
    _drug("clarithromycin", (MACROLIDES, _QT, AVOID_WITH_CLASS_IA_III), ("biaxin",)),
    _drug("erythromycin", (MACROLIDES, _QT, AVOID_WITH_CLASS_IA_III), ("ery tab", "erythrocin", "eryped")),
    # fluoroquinolones
    _drug("levofloxacin", _FQ, ("levaquin",)),
    _drug("moxifloxacin", _FQ, ("avelox",)),
    _drug("ciprofloxacin", _FQ, ("cipro", "ciproxin")),
    # tetracyclines
    _drug("doxycycline", (TETRACYCLINES,), ("vibramycin", "vibra tabs", "doryx", "monodox", "acticlate", "doxy")),
    # sulfonamide antibiotic and folate antagonists
    _drug("sulfamethoxazole-trimethoprim", (SULFONAMIDE_ANTIBIOTICS,),
          ("bactrim", "septra", "co trimoxazole", "cotrimoxazole", "tmp smx", "smx tmp", "smz tmp", "tmp smz",
           "sulfatrim")),
    _drug("trimethoprim", (), ("primsol",)),
    # other antibacterials
    _drug("nitrofurantoin", (), ("macrobid", "macrodantin", "furadantin")),
    _drug("metronidazole", (), ("flagyl",)),
    _drug("clindamycin", (), ("cleocin",)),
    # Pneumocystis alternatives named by the treatment knowledge base
    _drug("primaquine", ()),
    _drug("dapsone", (), ("aczone",)),
    _drug("atovaquone", (), ("mepron",)),
    _drug("pentamidine", (_QT,), ("pentam", "nebupent")),  # on the known-risk QT list (CredibleMeds)
    _drug("vancomycin", (GLYCOPEPTIDES,), ("vancocin", "vanco", "vanc")),
    _drug("linezolid", (), ("zyvox",)),
    _drug("gentamicin", (AMINOGLYCOSIDES,), ("garamycin",)),
    _drug("tobramycin", (AMINOGLYCOSIDES,), ("tobi",)),
    _drug("amikacin", (AMINOGLYCOSIDES,)),
    # antivirals, antifungal
    _drug("oseltamivir", (NEURAMINIDASE_INHIBITORS,), ("tamiflu",)),
    _drug("zanamivir", (NEURAMINIDASE_INHIBITORS,), ("relenza",)),
    _drug("baloxavir", (), ("xofluza", "baloxavir marboxil")),
    _drug("remdesivir", (), ("veklury",)),
    _drug("nirmatrelvir-ritonavir", (), ("paxlovid",)),
    _drug("ritonavir", (), ("norvir",)),
    _drug("molnupiravir", (), ("lagevrio",)),
    _drug("acyclovir", (), ("aciclovir", "zovirax")),
    _drug("valacyclovir", (), ("valaciclovir", "valtrex")),
    _drug("ribavirin", (), ("virazole", "rebetol", "copegus")),
    _drug("fluconazole", (_QT,), ("diflucan",)),
    # corticosteroids and respiratory drugs
    _drug("prednisone", (SYSTEMIC_CORTICOSTEROIDS,), ("deltasone",)),
    _drug("prednisolone", (SYSTEMIC_CORTICOSTEROIDS,), ("orapred",)),
    _drug("methylprednisolone", (SYSTEMIC_CORTICOSTEROIDS,), ("solu medrol", "medrol")),
    _drug("dexamethasone", (SYSTEMIC_CORTICOSTEROIDS,), ("decadron",)),
    _drug("hydrocortisone", (SYSTEMIC_CORTICOSTEROIDS,), ("solu cortef",)),
    _drug("albuterol", (), ("salbutamol", "ventolin", "proair", "proventil")),
    _drug("levalbuterol", (), ("xopenex",)),
    _drug("ipratropium", (), ("atrovent",)),
    _drug("tiotropium", (), ("spiriva",)),
    _drug("budesonide", (), ("pulmicort",)),
    _drug("fluticasone", (), ("flovent",)),
    _drug("salmeterol", (), ("serevent",)),
    _drug("formoterol", (), ("perforomist",)),
    # analgesics, antiemetic
    _drug("acetaminophen", (), ("paracetamol", "tylenol", "apap")),
    _drug("ibuprofen", (NSAIDS,), ("advil", "motrin")),
    _drug("naproxen", (NSAIDS,), ("aleve", "naprosyn")),
    _drug("ketorolac", (NSAIDS,), ("toradol",)),
    _drug("aspirin", (), ("acetylsalicylic acid",)),
    _drug("ondansetron", (_QT,), ("zofran",)),
    # anticoagulants
    _drug("heparin", (ANTICOAGULANTS,)),
    _drug("enoxaparin", (ANTICOAGULANTS,), ("lovenox",)),
    _drug("warfarin", (ANTICOAGULANTS,), ("coumadin", "jantoven")),
    _drug("apixaban", (ANTICOAGULANTS,), ("eliquis",)),
    _drug("rivaroxaban", (ANTICOAGULANTS,), ("xarelto",)),
    _drug("dabigatran", (ANTICOAGULANTS,), ("pradaxa",)),
    # statins; "simvistatin" is how Synthea spells it
    _drug("simvastatin", (STATINS,), ("zocor", "simvistatin")),
    _drug("lovastatin", (STATINS,), ("mevacor", "altoprev")),
    _drug("atorvastatin", (STATINS,), ("lipitor",)),
    _drug("rosuvastatin", (STATINS,), ("crestor",)),
    _drug("pravastatin", (STATINS,), ("pravachol",)),
    # antiarrhythmics and other cardiovascular drugs
    _drug("amiodarone", _AA, ("cordarone", "pacerone", "nexterone")),
    _drug("sotalol", _AA, ("betapace",)),
    _drug("dofetilide", _AA, ("tikosyn",)),
    _drug("dronedarone", _AA, ("multaq",)),
    _drug("quinidine", _AA),
    _drug("procainamide", _AA),
    _drug("disopyramide", _AA, ("norpace",)),
    _drug("digoxin", (), ("lanoxin",)),
    _drug("verapamil", (), ("calan", "isoptin")),
    _drug("diltiazem", (), ("cardizem",)),
    _drug("metoprolol", (), ("toprol", "lopressor")),
    _drug("amlodipine", (), ("norvasc",)),
    _drug("furosemide", (), ("lasix",)),
    _drug("hydrochlorothiazide", (), ("hctz",)),
    _drug("lisinopril", (ACE_INHIBITORS,), ("zestril", "prinivil")),
    _drug("enalapril", (ACE_INHIBITORS,), ("vasotec",)),
    _drug("ramipril", (ACE_INHIBITORS,), ("altace",)),
    _drug("captopril", (ACE_INHIBITORS,)),
    _drug("benazepril", (ACE_INHIBITORS,), ("lotensin",)),
    _drug("quinapril", (ACE_INHIBITORS,), ("accupril",)),
    _drug("losartan", (ARBS,), ("cozaar",)),
    _drug("valsartan", (ARBS,), ("diovan",)),
    _drug("irbesartan", (ARBS,), ("avapro",)),
    _drug("olmesartan", (ARBS,), ("benicar",)),
    _drug("candesartan", (ARBS,), ("atacand",)),
    _drug("spironolactone", (MRAS,), ("aldactone",)),
    _drug("eplerenone", (MRAS,), ("inspra",)),
    _drug("clopidogrel", (), ("plavix",)),
    _drug("colchicine", (), ("colcrys", "mitigare")),
    # psychotropics and others with QT risk
    _drug("haloperidol", (_QT,), ("haldol",)),
    _drug("citalopram", (SSRIS, _QT), ("celexa",)),
    _drug("escitalopram", (SSRIS, _QT), ("lexapro",)),
    _drug("fluoxetine", (SSRIS,), ("prozac",)),
    _drug("sertraline", (SSRIS,), ("zoloft",)),
    _drug("paroxetine", (SSRIS,), ("paxil",)),
    _drug("methadone", (_QT,), ("dolophine",)),
    _drug("donepezil", (_QT,), ("aricept",)),
    _drug("hydroxychloroquine", (_QT,), ("plaquenil", "hcq")),
    _drug("chloroquine", (_QT,)),
    # immunosuppressants, inducers
    _drug("tacrolimus", (CALCINEURIN_INHIBITORS,), ("prograf", "envarsus", "astagraf")),
    _drug("cyclosporine", (CALCINEURIN_INHIBITORS,), ("ciclosporin", "neoral", "sandimmune", "gengraf")),
    _drug("methotrexate", (), ("trexall", "otrexup", "rasuvo", "mtx")),
    _drug("rifampin", (STRONG_CYP3A_INDUCERS,), ("rifampicin", "rifadin")),
    _drug("carbamazepine", (STRONG_CYP3A_INDUCERS,), ("tegretol",)),
    _drug("phenytoin", (STRONG_CYP3A_INDUCERS,), ("dilantin",)),
    _drug("st john's wort", (STRONG_CYP3A_INDUCERS,), ("st johns wort", "saint john s wort", "hypericum")),
    # polyvalent cations that chelate tetracyclines and fluoroquinolones; bare "calcium" / "magnesium" are not
    # matched because they also name salts ("atorvastatin calcium", "esomeprazole magnesium")
    _drug("ferrous sulfate", (POLYVALENT_CATIONS,), ("ferrous sulphate",)),
    _drug("ferrous gluconate", (POLYVALENT_CATIONS,)),
    _drug("ferrous fumarate", (POLYVALENT_CATIONS,)),
    _drug("calcium carbonate", (POLYVALENT_CATIONS,), ("tums",)),
    _drug("calcium acetate", (POLYVALENT_CATIONS,), ("phoslo",)),
    _drug("calcium citrate", (POLYVALENT_CATIONS,)),
    _drug("magnesium oxide", (POLYVALENT_CATIONS,), ("mag ox",)),
    _drug("magnesium hydroxide", (POLYVALENT_CATIONS,), ("milk of magnesia",)),
    _drug("aluminum hydroxide", (POLYVALENT_CATIONS,), ("aluminium hydroxide",)),
    _drug("sucralfate", (POLYVALENT_CATIONS,), ("carafate",)),
    _drug("zinc sulfate", (POLYVALENT_CATIONS,), ("zinc sulphate",)),
    _drug("bismuth subsalicylate", (POLYVALENT_CATIONS,), ("pepto bismol",)),
    # common current medications, so that a plan that continues them is not reported as unknown
    _drug("metformin", (), ("glucophage",)),
    _drug("insulin", ()),
    _drug("omeprazole", (), ("prilosec",)),
    _drug("pantoprazole", (), ("protonix",)),
    _drug("nicotine", (), ("nicoderm", "nicorette")),
    _drug("oxycodone", (), ("oxycontin",)),
    _drug("hydrocodone", ()),
)

# Combinations named by their parts ("Amoxicillin 250 MG / Clavulanate 125 MG"): when every part is mentioned the
# combination replaces them. Parts that are not drugs on their own are listed in _COMPONENT_WORDS.
COMBINATIONS: dict[str, frozenset[str]] = {
    "amoxicillin-clavulanate": frozenset({"amoxicillin", "clavulanate"}),
    "ampicillin-sulbactam": frozenset({"ampicillin", "sulbactam"}),
    "piperacillin-tazobactam": frozenset({"piperacillin", "tazobactam"}),
    "imipenem-cilastatin": frozenset({"imipenem", "cilastatin"}),
    "sulfamethoxazole-trimethoprim": frozenset({"sulfamethoxazole", "trimethoprim"}),
    "nirmatrelvir-ritonavir": frozenset({"nirmatrelvir", "ritonavir"}),
}
_COMPONENT_WORDS: dict[str, str] = {
    "clavulanate": "clavulanate", "clavulanic": "clavulanate", "clav": "clavulanate",
    "sulbactam": "sulbactam", "tazobactam": "tazobactam", "tazo": "tazobactam", "cilastatin": "cilastatin",
    "piperacillin": "piperacillin", "imipenem": "imipenem", "sulfamethoxazole": "sulfamethoxazole",
    "sulphamethoxazole": "sulfamethoxazole", "smx": "sulfamethoxazole", "smz": "sulfamethoxazole",
    "nirmatrelvir": "nirmatrelvir",
}
# A part mentioned alone: the only product that contains it, or nothing (a beta-lactamase inhibitor alone).
_PART_ALONE: dict[str, str | None] = {
    "piperacillin": "piperacillin-tazobactam",
    "imipenem": "imipenem-cilastatin",
    "sulfamethoxazole": "sulfamethoxazole-trimethoprim",
    "nirmatrelvir": "nirmatrelvir-ritonavir",
    "clavulanate": None, "sulbactam": None, "tazobactam": None, "cilastatin": None,
}

# Class names as written in allergy records ("Allergy to penicillins", "sulfa drugs", "beta-lactam antibiotics").
_CLASS_WORDS: dict[str, str] = {
    "penicillins": PENICILLINS, "penicillin class": PENICILLINS,
    "cephalosporin": CEPHALOSPORINS, "cephalosporins": CEPHALOSPORINS,
    "carbapenem": CARBAPENEMS, "carbapenems": CARBAPENEMS,
    "beta lactam": BETA_LACTAMS, "beta lactams": BETA_LACTAMS,
    "sulfa": SULFONAMIDE_ANTIBIOTICS, "sulpha": SULFONAMIDE_ANTIBIOTICS,
    "sulfonamide": SULFONAMIDE_ANTIBIOTICS, "sulfonamides": SULFONAMIDE_ANTIBIOTICS,
    "sulphonamide": SULFONAMIDE_ANTIBIOTICS, "sulphonamides": SULFONAMIDE_ANTIBIOTICS,
    "macrolide": MACROLIDES, "macrolides": MACROLIDES,
    "quinolone": FLUOROQUINOLONES, "quinolones": FLUOROQUINOLONES,
    "fluoroquinolone": FLUOROQUINOLONES, "fluoroquinolones": FLUOROQUINOLONES,
    "tetracycline": TETRACYCLINES, "tetracyclines": TETRACYCLINES,
    "aminoglycoside": AMINOGLYCOSIDES, "aminoglycosides": AMINOGLYCOSIDES,
    "ace inhibitor": ACE_INHIBITORS, "ace inhibitors": ACE_INHIBITORS,
}

_MAX_PHRASE_WORDS = 4
_CLASS = "class:"
_PART = "part:"


def words(text: str) -> tuple[str, ...]:
    """Lower-case alphanumeric words; "β-lactam" reads as "beta lactam"."""
    return tuple(re.findall(r"[a-z0-9]+", text.lower().replace("β", "beta ").replace("'", " ")))


@cache
def _by_name() -> dict[str, Drug]:
    return {d.name: d for d in VOCABULARY}


@cache
def _phrases() -> dict[tuple[str, ...], str]:
    """Word sequence -> generic name, "part:<component>" or "class:<group>"."""
    index: dict[tuple[str, ...], str] = {}
    for drug in VOCABULARY:
        for phrase in (drug.name, *drug.synonyms):
            index[words(phrase)] = drug.name
    index.update({words(w): _PART + part for w, part in _COMPONENT_WORDS.items()})
    index.update({words(w): _CLASS + group for w, group in _CLASS_WORDS.items()})
    return index


def _mentions(text: str) -> list[str]:
    """Index values found in the text, longest phrase first at each position, in order of appearance."""
    tokens, index, found = words(text), _phrases(), []
    i = 0
    while i < len(tokens):
        for size in range(min(_MAX_PHRASE_WORDS, len(tokens) - i), 0, -1):
            hit = index.get(tokens[i : i + size])
            if hit:
                found.append(hit)
                i += size
                break
        else:
            i += 1
    return found


def _resolve_combinations(names: list[str]) -> list[str]:
    present = set(names)
    for combo, parts in COMBINATIONS.items():
        if parts <= present:
            names = [combo if n in parts else n for n in names]
    resolved = [_PART_ALONE.get(n, n) if n in _PART_ALONE else n for n in names]
    return list(dict.fromkeys(n for n in resolved if n in _by_name()))


def parse_drugs(text: str) -> list[str]:
    """Generic names of the known drugs mentioned in free text, in order of first mention, without repeats."""
    names = [m.removeprefix(_PART) for m in _mentions(text) if not m.startswith(_CLASS)]
    return _resolve_combinations(names)


def mentioned_classes(text: str) -> set[str]:
    """Drug classes named as such in the text ("penicillins", "sulfa drugs"), not those of named drugs."""
    return {m.removeprefix(_CLASS) for m in _mentions(text) if m.startswith(_CLASS)}


def drug(name: str) -> Drug:
    """The vocabulary entry of a generic name returned by parse_drugs."""
    return _by_name()[name]
