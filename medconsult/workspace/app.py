"""The clinician workspace: a FastAPI app over the consult graph, its checkpointer and its sign-off interrupt.

Pages are rendered on the server with autoescaping Jinja2 templates (record text and model output may be hostile);
the one script (`static/workspace.js`) follows a case's event stream and writes only text nodes. Every page but the
sign-in needs a session; every POST needs the form's CSRF token and a same-origin request; a case is visible only to
the clinician who opened it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sse_starlette.sse import EventSourceResponse

from medconsult.agents.followup import QUESTION_LIMIT
from medconsult.cases import Case, CaseError, CaseFile, load_case_file
from medconsult.config import Settings
from medconsult.fhir.auth import gateway_from_settings
from medconsult.fhir.client import FhirNotFound, FhirRequestError, FhirUnavailable
from medconsult.logs import quiet_data_loggers
from medconsult.runner import Services, followup_state, saved_state
from medconsult.signoff import SignOff
from medconsult.tools.imaging.compare_radiographs import CompareRadiographsTool
from medconsult.tools.imaging.segment_lungs import SegmentLungsTool
from medconsult.tracing import read_trace
from medconsult.workspace.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Sessions,
    load_secret,
    same_origin,
    verify_password,
)
from medconsult.workspace.evidence import CaseEvidence, case_evidence, fhir_reference, inside
from medconsult.workspace.images import overlay_layer
from medconsult.workspace.patients import UploadRefused, save_radiographs, search_patients
from medconsult.workspace.runs import ConsultRuns
from medconsult.workspace.security import SecurityHeaders
from medconsult.workspace.store import WorkspaceCase, WorkspaceStore

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
DECISIONS = ("approve", "edit", "reject")
NOTE_LIMIT = 4000


class SignInRequired(Exception):
    pass


@dataclass(frozen=True)
class CaseFileChoice:
    key: str  # what the form sends: never a path from the client
    path: Path
    case: CaseFile

    @property
    def title(self) -> str:
        return f"{self.case.id} · patient {self.case.patient} · {len(self.case.images)} image(s)"


def create_app(settings: Settings, services: Services, store: WorkspaceStore | None = None) -> FastAPI:
    quiet_data_loggers()
    store = store or WorkspaceStore(settings.resolved_workspace_dir / "workspace.sqlite")
    sessions = Sessions(
        load_secret(_secret(settings), settings.resolved_workspace_dir), settings.workspace_secure_cookies
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    out_root = settings.resolved_workspace_dir / "cases"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runs = ConsultRuns(settings, services, store, settings.workspace_parallel_consults,
                           settings.workspace_queued_consults)
        app.state.runs = runs
        await _resume_unfinished(runs, store, settings)
        yield
        await runs.shutdown()

    app = FastAPI(
        title="medconsult workspace", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignInRequired)
    async def _to_sign_in(request: Request, _error: SignInRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    def user_of(request: Request) -> str:
        user = sessions.user(request)
        if user is None or not store.user_exists(user):
            raise SignInRequired
        return user

    async def checked_form(request: Request, binding: str) -> dict[str, Any]:
        form = await request.form()
        if not same_origin(request) or not sessions.csrf_valid(binding, form.get("csrf")):
            raise HTTPException(403, "This form has expired or came from another site: reload the page.")
        return dict(form)

    def owned_case(case_id: str, user: str) -> WorkspaceCase:
        case = store.case(case_id, user)
        if case is None:
            raise HTTPException(404, "No such case.")
        return case

    def page(request: Request, name: str, user: str | None, **context: Any) -> HTMLResponse:
        csrf = sessions.csrf_token(f"user:{user}") if user else ""
        return templates.TemplateResponse(request, name, {"user": user, "csrf": csrf, **context})

    # ---- sign-in ------------------------------------------------------------------------------------------
    @app.get("/login")
    async def login_page(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        response = templates.TemplateResponse(
            request,
            "login.html",
            {"user": None, "csrf": sessions.csrf_token(f"login:{nonce}"), "error": None},
        )
        response.set_cookie(LOGIN_COOKIE, nonce, **sessions.cookie_options(600))
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await checked_form(request, f"login:{request.cookies.get(LOGIN_COOKIE, '')}")
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        if not await asyncio.to_thread(verify_password, password, store.password_hash(name)):
            nonce = secrets.token_urlsafe(16)
            response = templates.TemplateResponse(
                request, "login.html",
                {"user": None, "csrf": sessions.csrf_token(f"login:{nonce}"), "error": "Wrong name or password."},
                status_code=401,
            )
            response.set_cookie(LOGIN_COOKIE, nonce, **sessions.cookie_options(600))
            return response
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, sessions.cookie_for(name), **sessions.cookie_options(SESSION_MAX_AGE_S)
        )
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        user = user_of(request)
        await checked_form(request, f"user:{user}")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ---- cases --------------------------------------------------------------------------------------------
    @app.get("/")
    async def case_list(request: Request) -> Response:
        user = user_of(request)
        choices, unreadable = _case_file_choices(settings)
        return page(
            request, "cases.html", user, cases=store.cases(user), choices=choices, unreadable=unreadable
        )

    @app.post("/cases")
    async def new_case(request: Request) -> Response:
        user = user_of(request)
        form = await checked_form(request, f"user:{user}")
        choice = next((c for c in _case_file_choices(settings)[0] if c.key == form.get("case_file")), None)
        if choice is None:
            raise HTTPException(400, "Choose one of the listed cases.")
        question = str(form.get("question") or "").strip()[:500]
        case = choice.case.to_case()
        if question:
            case = case.model_copy(update={"question": question})
        _refuse_when_busy(request)
        created = store.add_case(user, choice.title, case, out_root)
        request.app.state.runs.start(created)
        logger.info("case %s started", created.id)
        return RedirectResponse(f"/cases/{created.id}", status_code=303)

    @app.get("/patients")
    async def patients(request: Request, q: str = "") -> Response:
        user = user_of(request)
        matches, error = [], None
        if q.strip():
            gateway = gateway_from_settings(settings, services.fhir_base_url, retries=0)
            try:
                matches = await asyncio.to_thread(search_patients, gateway, q[:128])
            except (FhirUnavailable, FhirRequestError) as failure:
                error = f"The FHIR server did not answer: {failure}"
        return page(request, "patients.html", user, query=q[:128], matches=matches, error=error, form_error=None,
                    max_mb=settings.workspace_max_upload_mb)

    @app.post("/cases/patient")
    async def new_patient_case(request: Request) -> Response:
        user = user_of(request)
        if not same_origin(request):
            raise HTTPException(403, "This form came from another site.")
        limit = settings.workspace_max_upload_mb << 20
        form = await request.form(max_files=8, max_fields=20, max_part_size=limit + (1 << 20))
        if not sessions.csrf_valid(f"user:{user}", form.get("csrf")):
            raise HTTPException(403, "This form has expired: reload the page.")
        patient = str(form.get("patient") or "").strip()[:128]
        question = " ".join(str(form.get("question") or "").split())[:500] or None
        as_of = str(form.get("as_of") or "").strip() or None
        case_id = f"ws-{secrets.token_hex(6)}"
        uploads = out_root / "uploads" / case_id
        try:
            if not patient:
                raise UploadRefused("choose a patient")
            saved = await save_radiographs(
                [f for f in form.getlist("images") if hasattr(f, "read")], uploads, limit
            )
            case = Case(id=case_id, patient=patient, question=question, as_of=as_of,
                        images=[str(item.path) for item in saved])
        except (UploadRefused, ValueError) as error:
            message = str(error) if isinstance(error, UploadRefused) else "the date must be YYYY-MM-DD"
            return page(request, "patients.html", user, query=patient, matches=[], error=None, form_error=message,
                        patient=patient, question=question or "", as_of=as_of or "",
                        max_mb=settings.workspace_max_upload_mb)
        _refuse_when_busy(request)
        created = store.add_case(user, f"patient {patient} · {len(saved)} image(s)", case, out_root)
        request.app.state.runs.start(created)
        logger.info("case %s started", created.id)
        return RedirectResponse(f"/cases/{created.id}", status_code=303)

    @app.get("/cases/{case_id}")
    async def case_page(request: Request, case_id: str) -> Response:
        user = user_of(request)
        case = owned_case(case_id, user)
        runs: ConsultRuns = request.app.state.runs
        live = runs.active(case.id)
        consulting = live and case.status in (
            "queued",
            "running",
            "signing",
        )  # the checkpoint is being written
        state = {} if consulting else await saved_state(settings, case.thread_id)
        steps = [] if live else _trace_steps(case.out_dir / "trace.jsonl")
        evidence = case_evidence(state, {} if consulting else await followup_state(settings, case.thread_id))
        turns = evidence.turns
        return page(
            request, "case.html", user, case=case, live=live, consulting=consulting, steps=steps, evidence=evidence,
            turns=turns,
            can_ask=not live and bool(evidence.facts) and case.status in ("awaiting sign-off", "signed"),
            decisions=store.decisions(case.id), decision_choices=DECISIONS,
            report_html=(case.out_dir / "report.html").exists(), report_md=(case.out_dir / "report.md").exists(),
        )

    @app.get("/cases/{case_id}/events")
    async def case_events(request: Request, case_id: str) -> Response:
        case = owned_case(case_id, user_of(request))
        channel = request.app.state.runs.channel(case.id)

        async def stream() -> AsyncIterator[dict[str, str]]:
            if channel is None:
                yield {"data": json.dumps({"type": "end"})}
                return
            async for event in channel.follow():
                yield {"data": json.dumps(event, default=str)}
            yield {"data": json.dumps({"type": "end"})}

        return EventSourceResponse(stream(), ping=15)

    @app.post("/cases/{case_id}/sign-off")
    async def sign_off(request: Request, case_id: str) -> Response:
        user = user_of(request)
        form = await checked_form(request, f"user:{user}")
        case = owned_case(case_id, user)
        decision, note = (
            str(form.get("decision", "")),
            str(form.get("note") or "").strip()[:NOTE_LIMIT] or None,
        )
        if decision not in DECISIONS:
            raise HTTPException(400, "Choose approve, edit or reject.")
        if decision != "approve" and not note:
            raise HTTPException(400, "An edit needs the amended text, a rejection its reason.")
        if case.status != "awaiting sign-off" or request.app.state.runs.active(case.id):
            raise HTTPException(409, f"This case is {case.status}: nothing to sign.")
        store.record_decision(case.id, user, decision, note)
        request.app.state.runs.sign_off(case, SignOff(decision=decision, reviewer=user, note=note))
        return RedirectResponse(f"/cases/{case.id}", status_code=303)

    @app.post("/cases/{case_id}/resume")
    async def resume(request: Request, case_id: str) -> Response:
        """A paused case (its FHIR or LLM server was down) goes on from its checkpoint."""
        user = user_of(request)
        await checked_form(request, f"user:{user}")
        case = owned_case(case_id, user)
        if case.status != "paused" or request.app.state.runs.active(case.id):
            raise HTTPException(409, f"This case is {case.status}: nothing to resume.")
        _refuse_when_busy(request)
        request.app.state.runs.start(case, resume=True)
        return RedirectResponse(f"/cases/{case.id}", status_code=303)

    @app.post("/cases/{case_id}/ask")
    async def ask(request: Request, case_id: str) -> Response:
        user = user_of(request)
        form = await checked_form(request, f"user:{user}")
        case = owned_case(case_id, user)
        question = " ".join(str(form.get("question") or "").split())[:QUESTION_LIMIT]
        if not question:
            raise HTTPException(400, "Write a question.")
        if case.status not in ("awaiting sign-off", "signed") or request.app.state.runs.active(case.id):
            raise HTTPException(409, f"This case is {case.status}: ask once its draft is ready.")
        _refuse_when_busy(request)
        request.app.state.runs.ask(case, question, user)
        return RedirectResponse(f"/cases/{case.id}#chat", status_code=303)

    @app.get("/cases/{case_id}/report.{kind}")
    async def report(request: Request, case_id: str, kind: str) -> Response:
        case = owned_case(case_id, user_of(request))
        if kind not in ("md", "html"):
            raise HTTPException(404)
        path = case.out_dir / f"report.{kind}"
        if not path.exists():
            raise HTTPException(404, "No report yet.")
        media = "text/markdown; charset=utf-8" if kind == "md" else "text/html; charset=utf-8"
        return FileResponse(path, media_type=media, filename=f"medconsult-{case.id}-report.{kind}")

    @app.get("/cases/{case_id}/facts/{fact_id}")
    async def fact_page(request: Request, case_id: str, fact_id: str) -> Response:
        user = user_of(request)
        case = owned_case(case_id, user)
        evidence = await _evidence(settings, case)
        fact = evidence.facts.get(fact_id)
        if fact is None:
            raise HTTPException(404, "No such fact in this case.")
        reference = fhir_reference(fact.resource)
        resource, resource_error = None, None
        if reference:
            resource, resource_error = await _read_resource(settings, services, reference)
        image = bool(fact.resource and inside(case.out_dir, fact.resource))
        return page(request, "fact.html", user, case=case, fact=fact, record=evidence.records.get(fact.result_id),
                    reference=reference, resource=resource, resource_error=resource_error, image=image)

    @app.get("/cases/{case_id}/facts/{fact_id}/image")
    async def fact_image(request: Request, case_id: str, fact_id: str) -> Response:
        case = owned_case(case_id, user_of(request))
        fact = (await _evidence(settings, case)).facts.get(fact_id)
        path = inside(case.out_dir, fact.resource) if fact and fact.resource else None
        if path is None or path.suffix.lower() != ".png":
            raise HTTPException(404)
        return FileResponse(path, media_type="image/png")

    @app.get("/cases/{case_id}/results/{result_id}")
    async def result_page(request: Request, case_id: str, result_id: str) -> Response:
        user = user_of(request)
        case = owned_case(case_id, user)
        record = (await _evidence(settings, case)).records.get(result_id)
        if record is None:
            raise HTTPException(404, "No such tool result in this case.")
        shown = json.dumps(record.model_dump(mode="json"), indent=2, ensure_ascii=False)
        return page(request, "result.html", user, case=case, record=record, shown=shown)

    @app.get("/cases/{case_id}/overlay/{result_id}/{layer}.png")
    async def overlay(request: Request, case_id: str, result_id: str, layer: str) -> Response:
        case = owned_case(case_id, user_of(request))
        record = case_evidence(await saved_state(settings, case.thread_id)).records.get(result_id)
        if (
            record is None
            or record.tool != SegmentLungsTool.tool_name()
            or not record.ok
            or layer not in ("radiograph", "lungs")
        ):
            raise HTTPException(404)
        path = await asyncio.to_thread(overlay_layer, record.result, layer, case.out_dir)
        if path is None:
            raise HTTPException(404)
        return FileResponse(path, media_type="image/png")

    @app.get("/cases/{case_id}/comparison/{result_id}.png")
    async def comparison(request: Request, case_id: str, result_id: str) -> Response:
        """The prior and current film side by side, as compare_radiographs drew them inside the case's folder."""
        case = owned_case(case_id, user_of(request))
        record = case_evidence(await saved_state(settings, case.thread_id)).records.get(result_id)
        if record is None or record.tool != CompareRadiographsTool.tool_name() or not record.ok:
            raise HTTPException(404)
        path = inside(case.out_dir, record.result["overlay_png"])
        if path is None or not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, media_type="image/png")

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _evidence(settings: Settings, case: WorkspaceCase) -> CaseEvidence:
    """The consult's evidence with what the follow-up look-ups added."""
    return case_evidence(
        await saved_state(settings, case.thread_id), await followup_state(settings, case.thread_id)
    )


def _refuse_when_busy(request: Request) -> None:
    """503 with the reason when the consult queue is full: the server answers at once instead of piling up work."""
    reason = request.app.state.runs.busy()
    if reason:
        raise HTTPException(503, reason, headers={"Retry-After": "120"})


def _secret(settings: Settings) -> str | None:
    return settings.workspace_secret.get_secret_value() if settings.workspace_secret else None


def _case_file_choices(settings: Settings) -> tuple[list[CaseFileChoice], list[str]]:
    """Case files in the configured folders, each once; and the files that could not be read, with why."""
    choices, unreadable, seen = [], [], set()
    for folder in settings.resolved_workspace_case_dirs:
        for path in sorted([*folder.glob("**/*.yaml"), *folder.glob("**/*.json")]) if folder.is_dir() else []:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                case = load_case_file(path, settings.resolved_data_dir)
            except (CaseError, ValueError) as error:
                unreadable.append(f"{path.name}: {str(error).splitlines()[0][:200]}")
                continue
            key = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
            choices.append(CaseFileChoice(key, resolved, case))
    return choices, unreadable


def _trace_steps(path: Path) -> list[dict[str, Any]]:
    return [e for e in read_trace(path) if e.get("kind") in ("node", "tool", "llm")] if path.exists() else []


async def _read_resource(
    settings: Settings, services: Services, reference: str
) -> tuple[str | None, str | None]:
    gateway = gateway_from_settings(settings, services.fhir_base_url, retries=0)
    try:
        resource = await asyncio.to_thread(gateway.read_json, reference)
    except FhirNotFound:
        return None, f"{reference} is no longer on the FHIR server."
    except (FhirUnavailable, FhirRequestError) as error:
        return None, f"The FHIR server did not answer: {error}"
    return json.dumps(resource, indent=2, ensure_ascii=False), None


async def _resume_unfinished(runs: ConsultRuns, store: WorkspaceStore, settings: Settings) -> None:
    """A restarted server finishes what the last one left: runs from their checkpoints, sign-offs from the
    recorded decision."""
    for case in store.unfinished():
        checkpointed = bool(await saved_state(settings, case.thread_id))
        if case.status == "signing":
            last = store.decisions(case.id)[-1]
            runs.sign_off(case, SignOff(decision=last.decision, reviewer=last.user, note=last.note))
        else:
            runs.start(case, resume=checkpointed)
