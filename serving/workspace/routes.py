"""The marketing workspace: server-rendered pages under /ui.

Five pages answer marketing's questions (what matters, points vs model, the points
matrix with its what-if editor, today's leads with a lead's and an account's page, the
model) in English or Russian, behind a sign-in. Everything a page needs is served by the
app (templates, one stylesheet, one small script for the what-if editor, charts as inline
SVG); the Content-Security-Policy lets nothing else in. Pages read the served model and
its holdout evidence (`analysis.py`) and the live store (`serving/store/reads.py`);
the one write is applying a points matrix (admins; recorded, then every active lead is
rescored).
"""

from __future__ import annotations

import asyncio
import logging
import math
import urllib.parse
from pathlib import Path
from typing import Any, Final

import yaml
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from features.points.matrix import RulesConfig, RulesError, parse_rules, rules_yaml
from serving.bodies import BodyError, parse_json
from serving.state import LoadedModel
from serving.store import reads
from serving.store.intake import from_us
from serving.store.matrices import apply_matrix, history
from serving.workspace.analysis import Analyses, MatrixMismatch, rule_rows, what_if
from serving.workspace.charts import Series, line_chart
from serving.workspace.i18n import LANG_COOKIE, LANGUAGES, Words, language_of
from serving.workspace.session import SESSION_COOKIE, SESSION_SECONDS, Session, Sessions

logger = logging.getLogger(__name__)

HERE: Final = Path(__file__).parent
STATIC: Final = HERE / "static"
STATIC_FILES: Final = {"workspace.css": "text/css", "whatif.js": "text/javascript"}
#: nothing but this server: scripts, styles, images, forms, connections
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
LEADS_SHOWN: Final = 50
GRADES: Final = [f"{letter}{n}" for letter in "ABCD" for n in "1234"]
MAX_FORM_BYTES: Final = 200_000

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["zip"] = lambda a, b: list(zip(a, b, strict=True))
router = APIRouter(prefix="/ui", include_in_schema=False)


class NotSignedIn(Exception):
    """Raised by a page without a session: the app answers with a redirect to the login."""

    def __init__(self, target: str) -> None:
        self.target = target


def _session(request: Request) -> Session:
    sessions: Sessions = request.app.state.sessions
    session = sessions.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedIn(target)
    return session


def _csrf(request: Request, session: Session, given: str | None) -> None:
    if not given or given != session.csrf:
        raise HTTPException(status_code=403, detail="the form is stale: reload the page")


def _page(request: Request, name: str, session: Session | None, **context: Any) -> HTMLResponse:
    words = Words(language_of(request))
    query = dict(request.query_params)
    switch = {
        code: request.url.path + "?" + urllib.parse.urlencode({**query, "lang": code})
        for code in LANGUAGES
    }
    html = templates.get_template(name).render(
        t=words,
        session=session,
        request=request,
        switch=switch,
        path=request.url.path,
        from_us=from_us,
        **context,
    )
    response = HTMLResponse(html)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, words.language, max_age=365 * 86400, samesite="lax")
    return response


def _model(request: Request) -> LoadedModel | None:
    current: LoadedModel | None = request.app.state.holder.current
    return current


def _analysis(request: Request, model: LoadedModel | None) -> Any:
    if model is None:
        return None
    analyses: Analyses = request.app.state.analyses
    return analyses.of(model.scorer, model.trained_rules)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status_code=413, detail="the form is too large")
    parsed = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


# --- signing in -------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return RedirectResponse("/ui/matters", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, failed: int = 0, next: str = "/ui/matters") -> Response:
    sessions: Sessions = request.app.state.sessions
    return _page(
        request, "login.html", None, failed=bool(failed), next=_safe_next(next),
        nobody=not sessions.anyone_can_sign_in,
    )  # fmt: skip


def _safe_next(target: str) -> str:
    """Only a page of the workspace (never another site) after signing in."""
    return target if target.startswith("/ui/") and not target.startswith("/ui//") else "/ui/matters"


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    sessions: Sessions = request.app.state.sessions
    user, password = form.get("user", "").strip()[:200], form.get("password", "")
    target = _safe_next(form.get("next", "/ui/matters"))
    session = await asyncio.to_thread(sessions.sign_in, user, password)
    if session is None:
        logger.info("workspace sign-in refused")
        query = urllib.parse.urlencode({"failed": 1, "next": target})
        return RedirectResponse(f"/ui/login?{query}", status_code=303)
    logger.info("workspace sign-in (%s)", session.role)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sessions.cookie(session),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise HTTPException(status_code=404, detail="no such file")
    return FileResponse(
        STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=3600"}
    )


# --- the pages --------------------------------------------------------------------------


@router.get("/matters", response_class=HTMLResponse)
async def matters(request: Request) -> Response:
    session = _session(request)
    model = _model(request)
    analysis = await asyncio.to_thread(_analysis, request, model)
    evidence = model.scorer.evidence if model is not None else None
    return _page(
        request, "matters.html", session, model=model, analysis=analysis, evidence=evidence
    )


@router.get("/compare", response_class=HTMLResponse)
async def compare(request: Request) -> Response:
    session = _session(request)
    model = _model(request)
    analysis = await asyncio.to_thread(_analysis, request, model)
    charts = {}
    if analysis is not None:
        words = Words(language_of(request))
        c = analysis.comparison
        share = [100 * s for s in c.model_curve.share]
        ticks = [(v, f"{v:g} %") for v in (0, 20, 40, 60, 80, 100)]
        for key, attribute, fmt in (("lift", "lift", "{:g}x"), ("capture", "capture", "{:.0%}")):
            charts[key] = line_chart(
                [
                    Series(words("compare.model"), share, list(getattr(c.model_curve, attribute))),
                    Series(
                        words("compare.points"),
                        share,
                        list(getattr(c.points_curve, attribute)),
                        dashed=True,
                    ),
                ],
                words("compare.share"),
                "",
                words(f"compare.{key}"),
                y_format=fmt,
                x_ticks=ticks,
                y_min=0,
            )
    return _page(request, "compare.html", session, model=model, analysis=analysis, charts=charts)


@router.get("/matrix", response_class=HTMLResponse)
async def matrix(request: Request, applied: int = 0) -> Response:
    session = _session(request)
    model = _model(request)
    context: dict[str, Any] = {"model": model, "applied": applied}
    if model is not None and model.scorer.rules is not None and model.scorer.evidence is not None:
        rules = model.scorer.rules
        evidence = model.scorer.evidence
        context["rules"] = rules
        context["rows"] = rule_rows(evidence, rules)
        context["evidence"] = evidence
        store_ok = request.app.state.store is not None and not request.app.state.store_problem
        context["applied_matrices"] = (
            await asyncio.to_thread(history, request.app.state.store, 20) if store_ok else []
        )
        context["in_effect"] = (
            context["applied_matrices"][0]
            if model.matrix_id is not None and context["applied_matrices"]
            else None
        )
        context["store_ok"] = store_ok
        try:
            context["current"] = await asyncio.to_thread(
                what_if, evidence, model.trained_rules or rules, rules
            )
        except MatrixMismatch as exc:
            context["mismatch"] = str(exc)
    return _page(request, "matrix.html", session, **context)


class EditError(ValueError):
    """An edit the matrix cannot take: which field, and what was expected."""


def edited(base: RulesConfig, values: dict[str, Any]) -> RulesConfig:
    """``base`` with the editor's numbers: {"mql_threshold": x, "rules": {name: {"points":
    p, "cap": c or None}}}. Anything but numbers stays as it is."""
    data = yaml.safe_load(rules_yaml(base))  # a fresh plain copy to edit
    threshold = values.get("mql_threshold", data["mql_threshold"])
    data["mql_threshold"] = _number(threshold, "mql_threshold")
    changes = values.get("rules") or {}
    if not isinstance(changes, dict):
        raise EditError("rules: expected an object of rule name to {points, cap}")
    known = {rule["name"]: rule for rule in data["rules"]}
    for name, change in changes.items():
        if name not in known:
            raise EditError(f"rules.{name}: not a rule of the matrix")
        if not isinstance(change, dict):
            raise EditError(f"rules.{name}: expected {{points, cap}}")
        if "points" in change:
            known[name]["points"] = _number(change["points"], f"rules.{name}.points")
        if "cap" in change:
            cap = change["cap"]
            if cap in (None, ""):
                known[name].pop("cap", None)
            else:
                known[name]["cap"] = _number(cap, f"rules.{name}.cap")
    try:
        return parse_rules(data, "the edited matrix")
    except RulesError as exc:
        raise EditError(str(exc)) from None


def _number(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise EditError(f"{where}: expected a number") from None
    if not math.isfinite(number):
        raise EditError(f"{where}: expected a finite number")
    return number


def _edit_of(model: LoadedModel, values: Any) -> RulesConfig:
    if model.scorer.rules is None:
        raise EditError("the served model has no points matrix")
    if not isinstance(values, dict):
        raise EditError("expected an object with mql_threshold and rules")
    return edited(model.scorer.rules, values)


def _form_values(form: dict[str, str]) -> dict[str, Any]:
    """The editor's form fields (points::RULE, cap::RULE, mql_threshold) as an edit."""
    rules: dict[str, dict[str, str]] = {}
    for key, value in form.items():
        kind, _, name = key.partition("::")
        if kind in ("points", "cap") and name:
            rules.setdefault(name, {})[kind] = value
    values: dict[str, Any] = {"rules": rules}
    if "mql_threshold" in form:
        values["mql_threshold"] = form["mql_threshold"]
    return values


@router.post("/matrix/what-if")
async def matrix_what_if(request: Request) -> Response:
    """The editor's numbers measured on the holdout (JSON in, JSON out)."""
    session = _session(request)
    _csrf(request, session, request.headers.get("x-csrf-token"))
    model = _model(request)
    if model is None or model.scorer.evidence is None:
        return JSONResponse({"detail": "no model with a holdout is served"}, status_code=503)
    try:
        rules = _edit_of(model, parse_json(await request.body()))
        result = await asyncio.to_thread(
            what_if, model.scorer.evidence, model.trained_rules or rules, rules
        )
    except BodyError:
        return JSONResponse({"detail": "the body is not JSON"}, status_code=422)
    except (EditError, MatrixMismatch) as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    return JSONResponse(result.as_dict())


@router.post("/matrix/download")
async def matrix_download(request: Request) -> Response:
    session = _session(request)
    form = await _form(request)
    _csrf(request, session, form.get("csrf"))
    model = _model(request)
    if model is None:
        raise HTTPException(status_code=503, detail="no model is loaded yet")
    try:
        rules = _edit_of(model, _form_values(form))
    except EditError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return Response(
        rules_yaml(rules),
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="points_matrix.yaml"'},
    )


@router.post("/matrix/apply")
async def matrix_apply(request: Request) -> Response:
    """Record the edited matrix as the one in effect and rescore every active lead."""
    session = _session(request)
    form = await _form(request)
    _csrf(request, session, form.get("csrf"))
    if not session.admin:
        raise HTTPException(status_code=403, detail="only an admin can apply a points matrix")
    model = _model(request)
    store = request.app.state.store
    if model is None or store is None or request.app.state.store_problem:
        raise HTTPException(status_code=503, detail="the model or the live store is not ready")
    try:
        rules = _edit_of(model, _form_values(form))
    except EditError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    note = form.get("note", "")[:500]
    found = await asyncio.to_thread(
        apply_matrix, store, rules, session.user, model.name, model.version, note
    )
    logger.info("points matrix %d applied by a workspace %s", found.matrix_id, session.role)
    request.app.state.holder.use_matrix(found)
    from serving.store.schedule import rescore_now

    task = asyncio.create_task(rescore_now(request.app, "matrix"))
    request.app.state.background.add(task)
    task.add_done_callback(request.app.state.background.discard)
    return RedirectResponse(f"/ui/matrix?applied={found.matrix_id}", status_code=303)


def _store_or_none(request: Request) -> Any:
    store = request.app.state.store
    return None if store is None or request.app.state.store_problem else store


@router.get("/leads", response_class=HTMLResponse)
async def leads(
    request: Request,
    grade: str | None = None,
    source: str | None = None,
    account: str | None = None,
) -> Response:
    session = _session(request)
    store = _store_or_none(request)
    grade = grade if grade in GRADES else None
    source = (source or "").strip()[:200] or None
    account = (account or "").strip()[:200] or None

    def work() -> dict[str, Any]:
        with store.read() as connection:
            where = reads.LeadFilter(grade=grade, source=source, account_id=account)
            mql, _ = reads.list_leads(
                connection, reads.LeadFilter(True, grade, source, account), "-probability",
                LEADS_SHOWN, None,
            )  # fmt: skip
            top, _ = reads.list_leads(connection, where, "-probability", LEADS_SHOWN, None)
            sources = reads.lead_sources(connection)
        return {"mql": mql, "top": top, "sources": sources}

    found = await asyncio.to_thread(work) if store is not None else None
    return _page(
        request, "leads.html", session, found=found, grades=GRADES,
        chosen={"grade": grade or "", "source": source or "", "account": account or ""},
    )  # fmt: skip


@router.get("/leads/{contact_id}", response_class=HTMLResponse)
async def lead(request: Request, contact_id: str) -> Response:
    session = _session(request)
    store = _store_or_none(request)
    words = Words(language_of(request))
    if store is None:
        return _page(
            request, "lead.html", session, found=None, no_store=True, contact_id=contact_id
        )
    settings = request.app.state.settings

    def work() -> dict[str, Any] | None:
        with store.read() as connection:
            rows = reads.history(connection, contact_id, None, None, None, 10_000)
            moved = reads.touches_between(connection, contact_id, [r.as_of_us for r in rows])
        if not rows:
            return None
        newest = reads.with_reasons(
            store, rows[-1:], request.app.state.explain_models, settings.reasons or 5
        )[0]
        # the first score counts everything before it: only its newest few are named
        moved[0] = moved[0][-5:]
        return {"rows": rows, "answer": newest, "moved": moved}

    found = await asyncio.to_thread(work)
    chart = ""
    if found is not None:
        times, probability, points = history_points(found["rows"])
        ticks = _time_ticks(times)
        chart_p = line_chart(
            [Series(words("leads.probability"), times, probability, points=True)],
            "",
            "",
            words("lead.history"),
            y_format="{:.0%}",
            x_ticks=ticks,
            y_min=0,
        )
        chart_points = line_chart(
            [Series(words("leads.points"), times, points, points=True)],
            "",
            "",
            words("leads.points"),
            x_ticks=ticks,
        )
        chart = chart_p + chart_points
    return _page(
        request, "lead.html", session, found=found, contact_id=contact_id, chart=chart,
    )  # fmt: skip


def history_points(rows: list[reads.LedgerRow]) -> tuple[list[float], list[float], list[float]]:
    """A lead's ledger rows as chart points: as_of (epoch seconds), probability, points."""
    return (
        [r.as_of_us / 1e6 for r in rows],
        [float(r.answer["probability"]) for r in rows],
        [float(r.answer["rules"]["points"]) for r in rows],
    )


def _time_ticks(times: list[float]) -> list[tuple[float, str]]:
    if not times:
        return []
    import datetime as dt

    lo, hi = min(times), max(times)
    count = 4 if hi > lo else 1
    ticks = [lo + (hi - lo) * k / max(count, 1) for k in range(count + 1)] if hi > lo else [lo]
    return [(t, dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d")) for t in ticks]


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
async def account(request: Request, account_id: str) -> Response:
    session = _session(request)
    store = _store_or_none(request)

    def work() -> dict[str, Any] | None:
        with store.read() as connection:
            return reads.account_view(connection, account_id)

    found = await asyncio.to_thread(work) if store is not None else None
    return _page(
        request, "account.html", session, found=found, account_id=account_id,
        no_store=store is None
    )  # fmt: skip


@router.get("/model", response_class=HTMLResponse)
async def model_page(request: Request) -> Response:
    session = _session(request)
    model = _model(request)
    from serving.workspace.registry_view import models_side_by_side

    view = await asyncio.to_thread(models_side_by_side, request.app, model)
    words = Words(language_of(request))
    charts = {}
    for key, item in view["models"].items():
        bins = item.get("calibration") or []
        if bins:
            charts[key] = line_chart(
                [
                    Series(
                        words("model.observed"),
                        [b.predicted for b in bins],
                        [b.observed for b in bins],
                        points=True,
                    )
                ],
                words("model.predicted"),
                words("model.observed"),
                words("model.calibration"),
                x_format="{:.0%}",
                y_format="{:.0%}",
                y_min=0,
                diagonal=True,
            )
    return _page(request, "model.html", session, view=view, charts=charts)
