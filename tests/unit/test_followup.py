"""Follow-up answers are checked like the draft: numbers against the facts, written fact ids against the case;
a number the physician's own question gave is not a claim."""

from __future__ import annotations

from medconsult.agents.followup import check_answer, followup_request
from medconsult.records import Fact
from medconsult.workspace.evidence import answer_segments

FACTS = [
    Fact(
        id="F1",
        kind="lab",
        text="Leukocytes 14.2 10*3/uL (reference 4.5-11 10*3/uL)",
        result_id="r1",
        tool="fhir_observations",
        resource="Observation/o1",
    ),
    Fact(
        id="F2",
        kind="vital",
        text="Body temperature 38.9 Cel",
        result_id="r2",
        tool="fhir_observations",
        resource="Observation/o2",
    ),
]


def _claims(answer: str, question: str = "") -> list[tuple[str, str]]:
    return [(flag.kind, flag.claim) for flag in check_answer(answer, FACTS, question)]


def test_a_value_the_record_holds_passes_and_one_it_does_not_is_flagged():
    assert _claims("Leukocytes are 14.2 10*3/uL (F1) and the temperature 38.9 Cel (F2).") == []
    assert _claims("Leukocytes are 20 10*3/uL.") == [("number", "Leukocytes are 20 10*3/uL")]


def test_a_fact_id_the_case_lacks_is_flagged():
    assert _claims("See F1 and F7.") == [("citation", "F7")]


def test_the_questions_own_hypothetical_value_is_not_a_claim():
    question = "What if the CRP were 10 mg/L?"
    assert _claims("A CRP of 10 mg/L would make a bacterial cause less likely.", question) == []
    assert _claims("A CRP of 250 mg/L is high.", question) == [("number", "CRP of 250 mg/L")]


def test_the_answer_may_cite_only_the_cases_facts():
    schema = followup_request(["Leukocytes [lab F1]", "Body temperature [vital F2]"]).model_json_schema()
    assert schema["properties"]["evidence"]["items"]["enum"] == [
        "Leukocytes [lab F1]",
        "Body temperature [vital F2]",
    ]
    assert schema["properties"]["answer"]["maxLength"] == 600


def test_only_known_fact_ids_become_links():
    assert answer_segments("Raised (F1); F9 is not a fact.", {"F1": FACTS[0]}) == [
        ("Raised (", None),
        ("F1", "F1"),
        ("); F9 is not a fact.", None),
    ]


def test_langgraph_json_loads_the_consult_graph_without_a_checkpointer():
    """What `langgraph dev` does: import each graph by file path and read its schemas."""
    import importlib.util
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    config = json.loads((repo / "langgraph.json").read_text())
    path, name = config["graphs"]["consult"].split(":")
    spec = importlib.util.spec_from_file_location("studio_graph", repo / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    graph = getattr(module, name)
    assert graph.checkpointer is None
    assert graph.get_input_jsonschema()["required"] == ["case"]
    assert {"intake", "differential", "plan", "sign_off"} <= set(graph.get_graph().nodes)


def test_a_question_sends_the_graph_back_to_the_chart_only_for_what_it_names():
    from fakes import LEUKOCYTES
    from medconsult.agents.evidence_requests import observed_analytes, tool_call_for
    from medconsult.agents.followup import chart_requests
    from medconsult.records import ToolRecord

    labs = ToolRecord(id="fhir_observations:1", tool="fhir_observations", args={}, ok=True, started_at="t",
                      duration_s=0.1, result={"summary": "1", "category": "laboratory", "total_found": 1,
                                              "observations": [LEUKOCYTES]})

    def kinds(question: str) -> list[tuple[str, str | None]]:
        return [(r.kind, r.analyte) for r in chart_requests(question, [labs])]

    assert kinds("How has the white cell count changed?") == [("history", "Leukocytes")]
    assert kinds("What was the WBC trend?") == [("history", "Leukocytes")]
    assert kinds("What does the CRP show?") == []  # not in this record: nothing to look up
    assert kinds("Why not viral?") == []
    assert kinds("Show me all the labs and the notes") == [("all_labs", None), ("more_notes", None)]
    assert kinds("Any earlier admissions?") == [("more_encounters", None)]
    [history] = chart_requests("WBC trend?", [labs])
    assert tool_call_for(history, observed_analytes([labs]))[1]["loinc_codes"] == ["6690-2"]


def test_a_dosing_question_looks_up_the_chosen_regimen_at_the_kidney_function_it_gives_or_the_records():
    from medconsult.agents.followup import dosing_request
    from medconsult.records import ToolRecord

    egfr = ToolRecord(id="egfr_ckd_epi_2021:1", tool="egfr_ckd_epi_2021", args={}, ok=True, started_at="t",
                      duration_s=0.1, result={"summary": "eGFR 48", "egfr": 48.3})
    regimen = "cap.ward.beta-lactam-macrolide"
    assert dosing_request("Dose for eGFR 25?", regimen, [egfr]) == {"regimen_id": regimen, "egfr": 25.0}
    assert dosing_request("What if the CrCl were 12 mL/min?", regimen, []) == {"regimen_id": regimen, "egfr": 12.0}
    assert dosing_request("Is the dose right for her kidneys?", regimen, [egfr]) == {"regimen_id": regimen,
                                                                                      "egfr": 48.3}
    assert dosing_request("Dose for eGFR 25?", None, [egfr]) is None  # no regimen chosen: nothing to dose
    assert dosing_request("Why not viral?", regimen, [egfr]) is None


def test_the_knowledge_base_dose_bands_become_citable_facts():
    from medconsult.config import Settings
    from medconsult.tools.base import ToolContext
    from medconsult.tools.knowledge.regimen_dosing import RegimenDosingArgs, RegimenDosingTool

    tool = RegimenDosingTool(context=ToolContext(Settings()))
    result = tool.execute(RegimenDosingArgs(regimen_id="aspiration.hospital.beta-lactam-macrolide", egfr=25))
    lines = [e.text for e in result.evidence()]
    assert lines[0].startswith("knowledge base regimen aspiration.hospital.beta-lactam-macrolide: ")
    clarithromycin = next(line for line in lines if "clarithromycin at eGFR 25 mL/min" in line)
    assert "CrCl [0, 30) mL/min" in clarithromycin and "Food and Drug Administration" in clarithromycin
    assert any("ceftriaxone at eGFR 25 mL/min: usual dose" in line for line in lines)
    facts = check_answer("Clarithromycin 250 mg twice daily at an eGFR of 25 mL/min.",
                         [Fact(id="F1", kind="knowledge", text=clarithromycin, result_id="r", tool="regimen_dosing")],
                         "Dose for eGFR 25?")
    assert facts == []  # the dose is the knowledge base's, the eGFR the question's
