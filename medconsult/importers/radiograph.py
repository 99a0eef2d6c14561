"""What a CSV row says about its radiograph: which view, which DICOM modality; and neutral case ids."""

from __future__ import annotations

from dataclasses import dataclass

LATERAL_VIEWS = {"L", "LL", "RL", "LAT", "LATERAL"}
RADIOGRAPH_MODALITIES = {"CR", "DX", "DR", "RG"}


@dataclass(frozen=True)
class View:
    position: str  # DICOM ViewPosition: PA, AP, or "" when the source does not say
    supine: bool = False


class NotUsable(ValueError):
    """The row's image is not a frontal chest radiograph; the reason is the message."""


def frontal_view(text: str) -> View:
    """"PA", "AP", "AP Supine", "ap", "" -> View; a lateral or unknown view raises NotUsable."""
    words = text.upper().replace("-", " ").split()
    if not words:
        return View("")
    if words[0] in ("PA", "AP"):
        return View(words[0], supine="SUPINE" in words)
    if words[0] in LATERAL_VIEWS:
        raise NotUsable(f"view {text!r} is lateral; the chest tools need a frontal view")
    raise NotUsable(f"view {text!r} is not a known frontal view (PA, AP, AP supine)")


def dicom_modality(text: str, default: str = "DX") -> str:
    """"X-ray" and an empty cell are digital radiography (DX); CR/DX/DR are kept; anything else raises NotUsable."""
    value = text.strip().upper()
    if value in ("", "X-RAY", "XRAY", "X RAY", "CXR", "RADIOGRAPH"):
        return default
    if value in RADIOGRAPH_MODALITIES:
        return value
    raise NotUsable(f"modality {text!r} is not a projection radiograph")


def unique_id(base: str, taken: set[str]) -> str:
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    taken.add(candidate)
    return candidate
