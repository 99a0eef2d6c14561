"""Loading FHIR Bundles (transaction or collection) into whichever FHIR server is configured.

Loading is idempotent, so `make demo` can run it every time:
- a bundle whose entries are all PUTs to fixed ids (the case importers write these) updates in place;
- any other bundle whose Patient (by identifier) already exists on the server is skipped;
- shared resources that many bundles repeat (Organization, Practitioner, Location) are created conditionally
  (`ifNoneExist` on their identifier), so each exists once however many bundles carry it.

The conditional creates go first, as a batch, and the rest of the bundle follows as a transaction whose
references to them are rewritten to the ids the server resolved. Servers cap transactions that contain
conditional operations (Medplum at 8 entries, as they need strict isolation); a plain transaction has no such cap.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fhirclient.models.patient import Patient

from medconsult.fhir.client import FhirGateway

SHARED_TYPES = {"Organization", "Practitioner", "Location", "PractitionerRole"}
MAX_UPDATES = 50  # Medplum refuses transactions with more update operations


@dataclass
class LoadResult:
    file: str
    status: str  # "loaded" | "skipped"
    entries: int
    created: int = 0
    failed: int = 0
    duration_s: float = 0.0
    note: str = ""


class BundleError(ValueError):
    pass


def _put_in_chunks(gateway: FhirGateway, entries: list[dict]) -> list[str]:
    """PUT entries as transactions of at most MAX_UPDATES entries (Medplum's cap on updates per transaction).

    Ids are fixed, so references between entries become literal ("Patient/<id>") and a chunk does not need
    the others' urn:uuid placeholders.
    """
    literal = {e["fullUrl"]: e["request"]["url"] for e in entries if e.get("fullUrl")}
    plain = [{k: v for k, v in e.items() if k != "fullUrl"} for e in entries]
    body = json.loads(_rewrite_references(json.dumps(plain), literal))
    statuses: list[str] = []
    for start in range(0, len(body), MAX_UPDATES):
        chunk = {"resourceType": "Bundle", "type": "transaction", "entry": body[start : start + MAX_UPDATES]}
        response = gateway.post_json("", chunk)
        statuses += [str(e.get("response", {}).get("status", "")) for e in response.get("entry", [])]
    return statuses


def _idempotent(transaction: dict) -> bool:
    """Every entry a PUT to a fixed id: loading twice changes nothing, so there is no need to skip the bundle."""
    return all(e.get("request", {}).get("method") == "PUT" for e in transaction["entry"])


def load_bundle_file(gateway: FhirGateway, path: Path, *, force: bool = False) -> LoadResult:
    started = time.perf_counter()
    try:
        bundle = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BundleError(f"{path}: not a readable JSON file ({error})") from error
    transaction = as_transaction(bundle, source=str(path))
    entries = len(transaction["entry"])
    if _idempotent(transaction):
        statuses = _put_in_chunks(gateway, transaction["entry"])
        written = sum(s.startswith("2") for s in statuses)
        duration = round(time.perf_counter() - started, 3)
        return LoadResult(str(path), "loaded", entries, written, entries - written, duration)
    if not force and (existing := _already_loaded(gateway, transaction)):
        return LoadResult(str(path), "skipped", entries, note=f"Patient/{existing} already on the server")
    shared, rest = _split_shared(transaction["entry"])
    statuses: list[str] = []
    resolved: dict[str, str] = {}
    if shared:
        response = gateway.post_json("", {"resourceType": "Bundle", "type": "batch", "entry": shared})
        for entry, answer in zip(shared, response.get("entry", []), strict=False):
            statuses.append(str(answer.get("response", {}).get("status", "")))
            location = answer.get("response", {}).get("location") or ""
            if location:
                resolved[entry["fullUrl"]] = "/".join(location.split("/_history")[0].split("/")[-2:])
    if rest:
        body = json.loads(_rewrite_references(json.dumps(rest), resolved))
        response = gateway.post_json("", {"resourceType": "Bundle", "type": "transaction", "entry": body})
        statuses += [str(e.get("response", {}).get("status", "")) for e in response.get("entry", [])]
    created = sum(s.startswith("2") for s in statuses)
    return LoadResult(
        str(path), "loaded", entries, created, entries - created, round(time.perf_counter() - started, 3)
    )


def as_transaction(bundle: dict, source: str = "bundle") -> dict:
    if bundle.get("resourceType") != "Bundle":
        raise BundleError(f"{source}: not a FHIR Bundle (resourceType={bundle.get('resourceType')!r})")
    kind = bundle.get("type")
    if kind == "transaction":
        transaction = bundle
    elif kind in ("collection", "batch"):
        transaction = _collection_to_transaction(bundle)
    else:
        raise BundleError(
            f"{source}: Bundle type {kind!r} cannot be loaded (transaction or collection expected)"
        )
    return transaction


def _collection_to_transaction(bundle: dict) -> dict:
    """POST every resource; literal references between entries are rewritten to their urn:uuid fullUrls."""
    entries = [e for e in bundle.get("entry", []) if e.get("resource")]
    urn_for: dict[str, str] = {}
    for entry in entries:
        resource = entry["resource"]
        full_url = entry.get("fullUrl") or f"urn:uuid:{uuid.uuid4()}"
        if not full_url.startswith("urn:uuid:"):
            full_url = f"urn:uuid:{uuid.uuid4()}"
        if resource.get("id"):
            urn_for[f"{resource['resourceType']}/{resource['id']}"] = full_url
        entry["fullUrl"] = full_url
    text = json.dumps(entries)
    for literal, urn in urn_for.items():
        text = re.sub(rf'"reference": "(?:[^"]*/)?{re.escape(literal)}"', f'"reference": "{urn}"', text)
    rewritten = json.loads(text)
    for entry in rewritten:
        entry["resource"].pop("id", None)
        entry["request"] = {"method": "POST", "url": entry["resource"]["resourceType"]}
    return {"resourceType": "Bundle", "type": "transaction", "entry": rewritten}


def _split_shared(entries: list[dict]) -> tuple[list[dict], list[dict]]:
    """Shared resources with an identifier become conditional creates; everything else stays as it is."""
    shared, rest = [], []
    for entry in entries:
        resource, request = entry.get("resource", {}), entry.get("request", {})
        identifier = next(
            (i for i in resource.get("identifier", []) if i.get("system") and i.get("value")), None
        )
        is_shared = resource.get("resourceType") in SHARED_TYPES and request.get("method") == "POST"
        if is_shared and identifier and str(entry.get("fullUrl", "")).startswith("urn:uuid:"):
            conditional = {
                **request,
                "ifNoneExist": f"identifier={identifier['system']}|{identifier['value']}",
            }
            shared.append({**entry, "request": conditional})
        else:
            rest.append(entry)
    return shared, rest


def _rewrite_references(text: str, resolved: dict[str, str]) -> str:
    for urn, literal in resolved.items():
        text = text.replace(f'"{urn}"', f'"{literal}"')
    return text


def _already_loaded(gateway: FhirGateway, transaction: dict) -> str | None:
    for entry in transaction.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "Patient":
            continue
        for identifier in resource.get("identifier", []):
            if identifier.get("system") and identifier.get("value"):
                token = f"{identifier['system']}|{identifier['value']}"
                found = gateway.search(Patient, {"identifier": token, "_count": "1"}, limit=1)
                if found:
                    return found[0].id
                break
    return None
