"""The managers' rules console, /manage/rules: the versions with who published them, when and why;
a draft edited as YAML with its errors shown in place; its guardrail report and test results; a
simulation over the contact log and its impact; publish and roll back with a reason; a diff.

Every page is for a signed-in manager; every form carries the page's CSRF token. The work itself
is gateway.authoring's, the same the API does."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import authoring
from ..appkeys import POOL, SETTINGS
from ..decide.simulate import SimulationParams
from ..errors import DomainError, Missing, StateConflict
from ..http import PageShown
from ..inputs import INT_MAX, parse_yaml, printable, unstorable_path
from ..rules.compiled import compile_ruleset
from ..rules.ruleset import RuleSet, RuleSetError
from ..store import rulesets as store
from .pages import add_page, read_form, render, require_staff
from .security import CSRF_FIELD
from .sessions import StaffSession, check_csrf
from .signin import refused_page

MANAGERS = ("manager",)
TEXT_MAX = 400_000
FORM_MAX = 3 * TEXT_MAX  # the YAML, percent-encoded
NOTICES = {
    "saved": "The draft is saved.",
    "published": "Published: every gateway process now routes by this version.",
    "rolled_back": "Rolled back: every gateway process now routes by this version.",
    "drafted": "A new draft, copied from the version you chose.",
}


async def _manager(request: web.Request) -> StaffSession:
    return await require_staff(request, MANAGERS)


async def _form(request: web.Request, session: StaffSession) -> dict[str, str]:
    """The posted form, from this gateway's own page (its CSRF token), within the size a rule set may have."""
    form = await read_form(request, FORM_MAX)
    if form is None or len(form.get("rules", "")) > TEXT_MAX:  # refused whole, never cut to fit
        lines = [f"The rules sent are longer than a rule set may be ({TEXT_MAX:,} characters)."]
        raise PageShown(
            await render(request, "message.html", {"title": "Too much was sent", "lines": lines}, status=413)
        )
    if not await check_csrf(request, session.token, form.get(CSRF_FIELD)):
        raise PageShown(await refused_page(request))
    return form


def _number(raw: Any, low: int = 1, high: int = INT_MAX) -> int | None:
    text = str(raw or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):  # int() refuses > 4,300 digits
        return None
    return int(text) if low <= int(text) <= high else None


async def _version_of(request: web.Request) -> int:
    version = _number(request.match_info["version"])
    if version is None:
        raise PageShown(await _missing(request, f"rule set version {request.match_info['version'][:40]}"))
    return version


async def _missing(request: web.Request, what: str) -> web.Response:
    return await render(request, "message.html", {"title": "Not found", "lines": [f"There is no {what}."]}, status=404)


async def _load(request: web.Request, version: int) -> RuleSet:
    """The version to validate, test or simulate; a page saying so when there is none."""
    try:
        return await authoring.load_version(request.app[POOL], version)
    except Missing:
        raise PageShown(await _missing(request, f"rule set version {version}")) from None


async def list_page(request: web.Request) -> web.Response:
    await _manager(request)
    versions = await store.list_rulesets(request.app[POOL])
    notice = next((NOTICES[k] for k in NOTICES if k in request.query), "")
    return await render(request, "rules_list.html", {"versions": versions, "notice": notice})


async def _version_page(
    request: web.Request, version: int, *, status: int = 200, text: str | None = None, **extra: Any
) -> web.Response:
    found = await store.get_ruleset(request.app[POOL], version)
    if found is None:
        return await _missing(request, f"rule set version {version}")
    published = await store.published_ruleset(request.app[POOL])
    notice = next((NOTICES[k] for k in NOTICES if k in request.query), "")
    context = {
        "v": found,
        "text": authoring.as_yaml(found) if text is None else text,
        "errors": [],
        "tests": None,
        "guardrails": None,
        "problem": "",
        "notice": notice,
        "published": published["version"] if published else None,
        "sim_days": "30",  # the simulation form's own values, kept when it is shown again
        "sim_mode": "at_the_time",
        **extra,
    }
    return await render(request, "rules_version.html", context, status=status)


async def version_page(request: web.Request) -> web.Response:
    await _manager(request)
    return await _version_page(request, await _version_of(request))


async def save(request: web.Request) -> web.Response:
    session = await _manager(request)
    version = await _version_of(request)
    form = await _form(request, session)
    text = str(form.get("rules", ""))
    try:
        data = parse_yaml(text)
        where = unstorable_path(data)
        if where is not None:
            message = "a character no record can hold (NUL or a lone surrogate)"
            raise RuleSetError([{"field": where or "(root)", "message": message}])
        ruleset, _ = authoring.parse_edit(version, data)
    except ValueError as exc:  # RuleSetError too: each error with its path
        errors = getattr(exc, "errors", None) or [{"field": "(the text)", "message": str(exc)}]
        # A path may hold the very character refused (a "\ud800" key): shown escaped, as a page can be sent.
        shown = [{k: printable(str(v)) for k, v in e.items()} for e in errors]
        return await _version_page(request, version, status=422, text=text, errors=shown)
    dumped = authoring.stored_form(ruleset)
    note = str(form.get("note", "")).strip()[:300] or None
    try:
        async with request.app[POOL].acquire() as conn:
            await store.update_draft(conn, version, dumped["rules"], dumped["tests"], note, session.actor.label)
    except DomainError as exc:
        return await _version_page(request, version, status=409, text=text, problem=exc.message)
    raise web.HTTPSeeOther(f"/manage/rules/{version}?saved=1")


async def validate(request: web.Request) -> web.Response:
    session = await _manager(request)
    version = await _version_of(request)
    await _form(request, session)
    report = authoring.validation_report(await _load(request, version))
    return await _version_page(request, version, guardrails=report["guardrails"])


async def run_tests(request: web.Request) -> web.Response:
    session = await _manager(request)
    version = await _version_of(request)
    await _form(request, session)
    compiled = compile_ruleset(await _load(request, version))
    return await _version_page(
        request, version, tests=authoring.test_report(compiled, request.app[SETTINGS].calendar())
    )


async def simulate(request: web.Request) -> web.Response:
    session = await _manager(request)
    version = await _version_of(request)
    form = await _form(request, session)
    days = _number(form.get("days"), 1, 400)
    mode = str(form.get("restrictions", "at_the_time"))
    kept = {"sim_days": str(form.get("days", ""))[:20], "sim_mode": mode}
    if days is None or mode not in ("at_the_time", "now"):
        problem = "Give a number of days from 1 to 400."
        return await _version_page(request, version, status=422, problem=problem, **kept)
    params = SimulationParams.model_validate({"days": days, "restrictions": mode})
    try:
        job = await authoring.start_simulation(
            request.app[POOL], request.app[SETTINGS], version, params, session.actor.label
        )
    except Missing as exc:  # this version, or the one in force to compare it with
        said = f"{exc.message[:1].upper()}{exc.message[1:]}."
        return await render(request, "message.html", {"title": "Not found", "lines": [said]}, status=404)
    except StateConflict as exc:  # simulations busy: said on the version's page, the form as it was sent
        return await _version_page(request, version, status=409, problem=exc.message, **kept)
    raise web.HTTPSeeOther(f"/manage/rules/simulations/{job}")


async def simulation_page(request: web.Request) -> web.Response:
    await _manager(request)
    job = _number(request.match_info["job"], 1, 2**63 - 1)
    found = await store.get_simulation(request.app[POOL], job) if job else None
    if found is None:
        return await _missing(request, "such simulation")
    return await render(request, "rules_simulation.html", {"sim": found, "r": found["result"]})


async def _put_in_force(request: web.Request, *, rollback: bool) -> web.Response:
    session = await _manager(request)
    form = await _form(request, session)
    version = _number(form.get("version")) if rollback else await _version_of(request)
    if version is None:
        return await _missing(request, "such rule set version")
    reason = str(form.get("reason", ""))
    try:
        await authoring.put_in_force(request.app, version, reason, session.actor.label, rollback=rollback)
    except DomainError as exc:
        tests = exc.details if isinstance(exc.details, dict) and "results" in exc.details else None
        return await _version_page(request, version, status=409 if tests else 422, problem=exc.message, tests=tests)
    raise web.HTTPSeeOther(f"/manage/rules/{version}?{'rolled_back' if rollback else 'published'}=1")


async def publish(request: web.Request) -> web.Response:
    return await _put_in_force(request, rollback=False)


async def rollback(request: web.Request) -> web.Response:
    return await _put_in_force(request, rollback=True)


async def draft(request: web.Request) -> web.Response:
    session = await _manager(request)
    form = await _form(request, session)
    source = _number(form.get("from_version"))
    async with request.app[POOL].acquire() as conn:
        try:
            version = await store.create_draft(conn, source, "", session.actor.label)
        except DomainError:
            return await _missing(request, f"rule set version {form.get('from_version')}")
    raise web.HTTPSeeOther(f"/manage/rules/{version}?drafted=1")


async def diff_page(request: web.Request) -> web.Response:
    await _manager(request)
    old, new = _number(request.query.get("from")), _number(request.query.get("to"))
    if old is None or new is None:
        return await _missing(request, "such pair of versions (choose two from the list)")
    try:
        diff = await authoring.diff(request.app[POOL], old, new)
    except DomainError:
        return await _missing(request, f"version {old} or {new}")
    return await render(request, "rules_diff.html", {"diff": diff})


def setup(app: web.Application) -> None:
    add_page(app, "GET", "/manage/rules", list_page)
    add_page(app, "POST", "/manage/rules/drafts", draft)
    add_page(app, "POST", "/manage/rules/rollback", rollback)
    add_page(app, "GET", "/manage/rules/diff", diff_page)
    add_page(app, "GET", "/manage/rules/simulations/{job}", simulation_page)
    add_page(app, "GET", "/manage/rules/{version}", version_page)
    add_page(app, "POST", "/manage/rules/{version}", save)
    add_page(app, "POST", "/manage/rules/{version}/validate", validate)
    add_page(app, "POST", "/manage/rules/{version}/test", run_tests)
    add_page(app, "POST", "/manage/rules/{version}/simulate", simulate)
    add_page(app, "POST", "/manage/rules/{version}/publish", publish)
