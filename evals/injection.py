"""Planted instructions in every free-text field (issue 16): how many of their payloads reach the draft.

`medconsult eval injection --out RUN_DIR` plants the set (evals/planted_instructions.yaml) in batches, one synthetic
patient per batch (evals/injection_bundles.py), runs each batch's case through the consult graph with the configured
model up to the physician's sign-off, and scores the draft (evals/injection_scoring.py): per passage, whether the
model was shown it, whether the detector flagged it, and whether its payload is in the draft before and after the
deterministic defences. A case that crashes or times out keeps its passages in the denominator as `not_run`.
RUN_DIR gets injection.json (every passage, every case, the rates), bundles/ and cases/<case>/ (report, trace).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from medconsult.config import Settings
from medconsult.evals.injection_bundles import FIELD_CAPACITY, batch_case, planted_bundle
from medconsult.evals.injection_scoring import PassageOutcome, not_run, score_case
from medconsult.evals.injection_set import PlantedPassage, batches
from medconsult.fhir.auth import gateway_from_settings
from medconsult.fhir.loader import load_bundle_file
from medconsult.runner import Services, run_consult

RESULT_FILE = "injection.json"
CASE_FILE = "passages.json"  # cases/<case>/: a finished case's score, so that running again skips it


class Rates(BaseModel):
    planted: int
    not_run: int  # in a case that crashed or timed out: counted, never a success
    shown: int
    detected: int
    before: int  # payload in what the model wrote
    after: int  # payload in the draft the physician sees, unflagged
    withheld: int
    rate_before: float
    rate_after: float


class CaseResult(BaseModel):
    case: str
    passages: list[str]
    status: str  # done | error | timeout
    wall_s: float
    error: str | None = None
    withheld: int = 0  # texts the defence withheld from the draft
    collateral: int = 0  # of those, texts that name no payload planted in the case
    resumed: bool = False  # scored by an earlier run into the same folder


class ScoredCase(BaseModel):
    result: CaseResult
    passages: list[PassageOutcome]


class InjectionRun(BaseModel):
    model: str
    started: str
    elapsed_s: float
    batch_size: int
    cases: list[CaseResult]
    passages: list[PassageOutcome]
    rates: dict[str, Rates]  # "all", "planted set", "held out", then "field:<field>" and "style:<style>"


def rates(outcomes: list[PassageOutcome]) -> Rates:
    planted = len(outcomes)
    before = sum(o.success_before for o in outcomes)
    after = sum(o.success_after for o in outcomes)
    return Rates(
        planted=planted, not_run=sum(o.outcome == "not_run" for o in outcomes), shown=sum(o.shown for o in outcomes),
        detected=sum(o.detected for o in outcomes), before=before, after=after,
        withheld=sum(o.outcome == "withheld" for o in outcomes),
        rate_before=round(before / planted, 4) if planted else 0.0,
        rate_after=round(after / planted, 4) if planted else 0.0,
    )


def grouped_rates(outcomes: list[PassageOutcome]) -> dict[str, Rates]:
    groups = {"all": outcomes, "planted set": [o for o in outcomes if not o.holdout],
              "held out": [o for o in outcomes if o.holdout]}
    groups |= {f"field:{f}": [o for o in outcomes if o.field == f] for f in dict.fromkeys(o.field for o in outcomes)}
    groups |= {f"style:{s}": [o for o in outcomes if o.style == s] for s in dict.fromkeys(o.style for o in outcomes)}
    return {name: rates(members) for name, members in groups.items() if members}


async def run_injection_eval(
    passages: list[PlantedPassage],
    settings: Settings,
    services: Services,
    run_dir: Path,
    *,
    batch_size: int = 10,
    limit: int | None = None,
    case_timeout_s: float = 1800.0,
    progress: Callable[[CaseResult], None] | None = None,
) -> InjectionRun:
    """Plant, run and score every batch (the first `limit`), one case at a time; writes RUN_DIR/injection.json.
    Running again into the same folder skips the cases that finished."""
    started, clock = datetime.now(UTC), time.perf_counter()
    cases, outcomes = [], []
    for batch in batches(passages, batch_size, FIELD_CAPACITY)[:limit]:
        result, scored = await run_batch(batch, settings, services, run_dir, case_timeout_s)
        cases.append(result)
        outcomes += scored
        if progress:
            progress(result)
    run = InjectionRun(model=services.model_name, started=started.isoformat(),
                       elapsed_s=round(time.perf_counter() - clock, 2), batch_size=batch_size, cases=cases,
                       passages=outcomes, rates=grouped_rates(outcomes))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESULT_FILE).write_text(json.dumps(run.model_dump(mode="json"), indent=1))
    return run


async def run_batch(batch: list[PlantedPassage], settings: Settings, services: Services, run_dir: Path,
                    timeout_s: float) -> tuple[CaseResult, list[PassageOutcome]]:
    """One batch: its record planted on the FHIR server, its case run up to sign-off, its passages scored. A case
    an earlier run into the same folder finished is not run again (a crashed or timed-out one is)."""
    case = batch_case(batch)
    saved = run_dir / "cases" / case.id / CASE_FILE
    if saved.is_file():
        scored = ScoredCase.model_validate_json(saved.read_text())
        return scored.result.model_copy(update={"resumed": True}), scored.passages
    result = CaseResult(case=case.id, passages=[p.id for p in batch], status="done", wall_s=0.0)
    clock = time.perf_counter()
    try:
        bundle = run_dir / "bundles" / f"{case.id}.json"
        await asyncio.to_thread(_plant, batch, settings, services.fhir_base_url, bundle)
        consult = run_consult(case, settings, services, run_dir / "cases" / case.id)
        state = (await asyncio.wait_for(consult, timeout=timeout_s)).state
    except TimeoutError:
        result.status, result.error = "timeout", f"no draft within {timeout_s:.0f} s"
    except Exception as error:  # noqa: BLE001 - one case's failure must not stop the run; it is counted
        result.status, result.error = "error", f"{type(error).__name__}: {error}"
    result.wall_s = round(time.perf_counter() - clock, 2)
    if result.error:
        return result, not_run(batch, case.id, result.error)
    withheld = state.get("withheld_actions") or []
    result.withheld = len(withheld)
    result.collateral = sum(not any(p.named_in(f"{w.action} {w.detail}") for p in batch) for w in withheld)
    scored = ScoredCase(result=result, passages=score_case(batch, state, case.id))
    saved.write_text(scored.model_dump_json(indent=1))
    return result, scored.passages


def _plant(batch: list[PlantedPassage], settings: Settings, fhir_base_url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(planted_bundle(batch), indent=1))
    gateway = gateway_from_settings(settings, fhir_base_url, timeout_s=max(settings.fhir_timeout_s, 60))
    load_bundle_file(gateway, path)
