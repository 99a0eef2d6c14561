"""`medconsult eval` through the CLI on a bundled suite, against the real FHIR and llama.cpp servers (smollm2).

The model's answers are meaningless at 135M parameters; what is checked is the harness: the suite's own records are
loaded, each agent's case is recorded with its measurements, the scorecard and plots are written, resume skips
finished cases, a judge model grades a run, and two runs compare.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA_DIR

pytestmark = pytest.mark.integration


def _eval(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "medconsult"), "eval", *args],
                          env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture
def env(fhir_server, llm_server, tmp_path: Path) -> dict[str, str]:
    base_url, model = llm_server
    return {"MEDCONSULT_FHIR_BASE_URL": fhir_server.local_fhir_url, "MEDCONSULT_LLM_BASE_URL": base_url,
            "MEDCONSULT_LLM_MODEL": model, "MEDCONSULT_STATE_DIR": str(tmp_path / "state"),
            "MEDCONSULT_DATA_DIR": str(DATA_DIR), "MEDCONSULT_REACT_MAX_STEPS": "3"}


def test_both_agents_run_a_bundled_suite_and_the_runs_compare(env: dict[str, str], tmp_path: Path):
    runs = {agent: tmp_path / agent for agent in ("consult", "react")}
    for agent, run in runs.items():
        result = _eval(["safety-traps", "--agent", agent, "--limit", "1", "--out", str(run)], env, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        case = json.loads((run / "results.jsonl").read_text().splitlines()[0])
        assert case["status"] == "done" and case["agent"] == agent and case["case"].startswith("strap-01")
        assert case["label"]["traps"] and case["time"]["llm_calls"] >= 1
        card = json.loads((run / "scorecard.json").read_text())
        assert card["agent"] == agent and (run / "plots" / "cost.png").is_file()
        assert (run / "cases" / case["case"] / "trajectory.json").is_file()
    consult = json.loads((runs["consult"] / "results.jsonl").read_text().splitlines()[0])
    # The consult graph always runs the calculators; the harness recomputes them from the raw record.
    agreement = {row["calculator"]: row for row in consult["calculator_agreement"]}
    assert agreement["egfr_ckd_epi_2021"]["agree"] is True and agreement["curb65"]["agree"] is True
    assert consult["patient_id"] and {"fhir_allergies", "load_image"} <= {c["tool"] for c in consult["trajectory"]}

    again = _eval(["safety-traps", "--agent", "react", "--limit", "1", "--out", str(runs["react"])], env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed" in again.stdout + again.stderr  # the progress line of a skipped case
    assert json.loads((runs["react"] / "results.jsonl").read_text().splitlines()[0])["resumed"] is True

    judged = _eval(["judge", str(runs["consult"])], env, tmp_path)  # the same small model as the judge
    assert judged.returncode == 0, judged.stdout + judged.stderr
    verdict = json.loads((runs["consult"] / "cases" / case["case"] / "judge.json").read_text())
    assert 1 <= verdict["reasoning_quality"] <= 5 and verdict["judge"] == env["MEDCONSULT_LLM_MODEL"]

    compared = _eval(["compare", str(runs["consult"]), str(runs["react"]), "--out", str(tmp_path / "c.json")],
                     env, tmp_path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert json.loads((tmp_path / "c.json").read_text())["paired_cases"] == 1


def test_an_unknown_suite_is_a_clear_error(env: dict[str, str], tmp_path: Path):
    result = _eval(["no-such-suite", "--out", str(tmp_path / "run")], env, tmp_path)
    assert result.returncode != 0
    assert "no suite folder or bundled suite named 'no-such-suite'" in result.stdout + result.stderr
    assert "safety-traps" in result.stdout + result.stderr
