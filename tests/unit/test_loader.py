from __future__ import annotations

import pytest

from medconsult.fhir.loader import BundleError, _rewrite_references, _split_shared, as_transaction

COLLECTION = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {
            "fullUrl": "http://old.example/fhir/Patient/p1",
            "resource": {"resourceType": "Patient", "id": "p1"},
        },
        {"resource": {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}}},
    ],
}


def test_collection_becomes_a_transaction_with_internal_references():
    transaction = as_transaction(COLLECTION)
    patient, observation = transaction["entry"]
    assert transaction["type"] == "transaction"
    assert patient["fullUrl"].startswith("urn:uuid:") and "id" not in patient["resource"]
    assert observation["resource"]["subject"]["reference"] == patient["fullUrl"]
    assert observation["request"] == {"method": "POST", "url": "Observation"}


def test_other_bundle_types_are_refused():
    with pytest.raises(BundleError, match="searchset"):
        as_transaction({"resourceType": "Bundle", "type": "searchset"})
    with pytest.raises(BundleError, match="not a FHIR Bundle"):
        as_transaction({"resourceType": "Patient"})


def test_shared_resources_become_conditional_creates_and_references_follow():
    org = {
        "fullUrl": "urn:uuid:org-1",
        "request": {"method": "POST", "url": "Organization"},
        "resource": {"resourceType": "Organization", "identifier": [{"system": "s", "value": "v"}]},
    }
    enc = {
        "fullUrl": "urn:uuid:enc-1",
        "request": {"method": "POST", "url": "Encounter"},
        "resource": {"resourceType": "Encounter", "serviceProvider": {"reference": "urn:uuid:org-1"}},
    }
    shared, rest = _split_shared([org, enc])
    assert shared[0]["request"]["ifNoneExist"] == "identifier=s|v" and rest == [enc]
    rewritten = _rewrite_references('{"reference": "urn:uuid:org-1"}', {"urn:uuid:org-1": "Organization/42"})
    assert rewritten == '{"reference": "Organization/42"}'
