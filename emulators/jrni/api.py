"""The admin REST API under ``/api/v1`` (also ``/api/v3``, ``/api/v5``): login, staff, schedules, bookings, blocks;
and the few public reads its links lead to (a company's questions and address).

Handlers parse the request, call ``State``, shape the answer with ``hal``; errors are ``JrniError`` and become HTTP
statuses in ``app.error_middleware``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from . import hal
from .context import EMULATOR, Emulator, api_base
from .state import (
    BadRequestError,
    Token,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_int,
)

VERSIONS = ("v1", "v3", "v5")
T = TypeVar("T")
TOKEN = web.RequestKey("jrni_token", Token)  # the request's Auth-Token, refreshed only if the call succeeds


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class UnsupportedMediaTypeError(BadRequestError):
    status, reason = 415, "Unsupported Media Type"


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}``. 415 for another media type, 400 for bad JSON."""
    raw = await request.read()
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError(
            f"send JSON with Content-Type: application/json, not {request.content_type}"
        )
    try:
        # NaN / Infinity are not JSON: accepted, they would be echoed back as invalid JSON.
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequestError("the body is not valid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def emulator(request: web.Request) -> Emulator:
    """The emulator this request belongs to."""
    return request.app[EMULATOR]


def admin_token(request: web.Request) -> tuple[Emulator, Token, int]:
    """Check the Auth-Token and that it reaches the company in the path; returns (emulator, token, company id)."""
    emu = emulator(request)
    token = emu.state.check_token(request.headers.get("Auth-Token"))
    company_id = int(request.match_info["company_id"])
    emu.state.check_company_access(token, company_id)
    request[TOKEN] = token
    return emu, token, company_id


def path_id(request: web.Request, name: str = "id") -> int:
    """An integer id from the path (the routes only match digits)."""
    return int(request.match_info[name])


def query_int(request: web.Request, name: str, minimum: int | None = None) -> int | None:
    """An optional integer query parameter."""
    value = request.query.get(name)
    return None if value in (None, "") else parse_int(value, name, minimum)


def paged(
    request: web.Request, key: str, rows: Sequence[T], shape: Callable[[T], Any], default: int
) -> web.Response:
    """A HAL collection page: ``total_entries``, ``_embedded.<key>``, ``_links`` self/next/previous."""
    page = query_int(request, "page", 1) or 1
    per_page = query_int(request, "per_page", 1) or default
    chunk = rows[(page - 1) * per_page : page * per_page]
    params = {k: v for k, v in request.query.items() if k not in ("page", "per_page")}
    # Links name v1 whatever version was asked (jrni-gaps.md §7): swap the "/api/vN" prefix.
    url = api_base(request) + "/" + request.path.split("/", 3)[3]
    return web.json_response(
        {
            "total_entries": len(rows),
            "_embedded": {key: [shape(r) for r in chunk]},
            "_links": hal.page_links(url, params, page, per_page, len(rows)),
        }
    )


# ---------------------------------------------------------------------------------------------------- login


async def login(request: web.Request) -> web.Response:
    """POST /login {email, password[, id]} and POST /login/admin/{company_id}."""
    emu = emulator(request)
    body = await read_json(request)
    if "company_id" in request.match_info:
        company_id: int | None = int(request.match_info["company_id"])
    else:
        company_id = None if body.get("id") is None else parse_int(body["id"], "id")
    if "email" not in body or "password" not in body:
        raise BadRequestError("email and password are required")
    token, admin = emu.state.login(body["email"], body["password"], company_id)
    shown = company_id if company_id is not None else admin.company_id
    return web.json_response(
        hal.login_json(emu.state, api_base(request), token.token, admin, shown), status=201
    )


async def logout(request: web.Request) -> web.Response:
    """DELETE /login: the Auth-Token stops working."""
    emulator(request).state.logout(request.headers.get("Auth-Token"))
    return web.json_response({"logged_out": True})


# ---------------------------------------------------------------------------------------------------- company


async def get_company(request: web.Request) -> web.Response:
    """GET /admin/{company_id}/company."""
    emu, _, company_id = admin_token(request)
    return web.json_response(hal.company_json(emu.state, api_base(request), emu.state.company(company_id)))


async def get_address(request: web.Request) -> web.Response:
    """GET /{c}/addresses/{id}: a company's address (public: App-Id only, as BBDOC company.md)."""
    emu = emulator(request)
    address = emu.state.address(int(request.match_info["company_id"]), path_id(request))
    return web.json_response(hal.address_json(api_base(request), address))


# ---------------------------------------------------------------------------------------------------- questions


async def list_questions(request: web.Request) -> web.Response:
    """GET /{c}/questions{?detail_group_id} (public) and /admin/{c}/questions: the custom booking questions a
    booking of this company can answer (its own and its parent companies'), each with its ``reference`` slug."""
    emu = emulator(request)
    if "/admin/" in request.path:
        _, _, company_id = admin_token(request)
    else:
        company_id = int(request.match_info["company_id"])
    rows = emu.state.company_questions(company_id, query_int(request, "detail_group_id", 1))
    api = api_base(request)
    return paged(request, "questions", rows, lambda q: hal.question_json(api, q), 100)


async def get_question(request: web.Request) -> web.Response:
    """GET /{c}/questions/{id} (public)."""
    emu = emulator(request)
    company = emu.state.company(int(request.match_info["company_id"]))
    question = emu.state.question(company.id, path_id(request))
    return web.json_response(hal.question_json(api_base(request), question))


async def list_people(request: web.Request) -> web.Response:
    """GET /admin/{c}/people{?page,per_page,include_disabled}."""
    emu, _, company_id = admin_token(request)
    people = emu.state.of_company(emu.state.people, company_id)
    if not parse_bool(request.query.get("include_disabled", "true"), "include_disabled"):
        people = [p for p in people if not p.disabled]
    api = api_base(request)
    return paged(request, "people", people, lambda p: hal.person_json(emu.state, api, p), 300)


async def get_person(request: web.Request) -> web.Response:
    """GET /admin/{c}/people/{id}."""
    emu, _, company_id = admin_token(request)
    person = emu.state.person(company_id, path_id(request))
    return web.json_response(hal.person_json(emu.state, api_base(request), person))


async def list_resources(request: web.Request) -> web.Response:
    """GET /admin/{c}/resources{?page,per_page}."""
    emu, _, company_id = admin_token(request)
    rows = emu.state.of_company(emu.state.resources, company_id)
    api = api_base(request)
    return paged(request, "resources", rows, lambda r: hal.resource_json(emu.state, api, r), 30)


async def get_resource(request: web.Request) -> web.Response:
    """GET /admin/{c}/resources/{id}."""
    emu, _, company_id = admin_token(request)
    resource = emu.state.resource(company_id, path_id(request))
    return web.json_response(hal.resource_json(emu.state, api_base(request), resource))


async def list_services(request: web.Request) -> web.Response:
    """GET /admin/{c}/services."""
    emu, _, company_id = admin_token(request)
    rows = emu.state.of_company(emu.state.services, company_id)
    api = api_base(request)
    return paged(request, "services", rows, lambda s: hal.service_json(api, s), 30)


async def get_service(request: web.Request) -> web.Response:
    """GET /admin/{c}/services/{id}."""
    emu, _, company_id = admin_token(request)
    return web.json_response(
        hal.service_json(api_base(request), emu.state.service(company_id, path_id(request)))
    )


# ---------------------------------------------------------------------------------------------------- schedules


async def list_schedules(request: web.Request) -> web.Response:
    """GET /admin/{c}/schedules."""
    emu, _, company_id = admin_token(request)
    rows = emu.state.of_company(emu.state.schedules, company_id)
    api = api_base(request)
    return paged(request, "schedules", rows, lambda s: hal.schedule_json(api, s), 30)


async def get_schedule(request: web.Request) -> web.Response:
    """GET /admin/{c}/schedules/{id}{?start_date,end_date}: the rules, and the worked ranges per date if asked."""
    emu, _, company_id = admin_token(request)
    schedule = emu.state.schedule(company_id, path_id(request))
    dates = None
    if "start_date" in request.query or "end_date" in request.query:
        start = parse_date(request.query.get("start_date"), "start_date")
        end = parse_date(request.query.get("end_date"), "end_date")
        dates = emu.state.working_dates(schedule, start, end)
    return web.json_response(hal.schedule_json(api_base(request), schedule, dates))


async def get_shifts(request: web.Request) -> web.Response:
    """GET /admin/{c}/schedules/{id}/shifts?start_date&end_date."""
    emu, _, company_id = admin_token(request)
    schedule = emu.state.schedule(company_id, path_id(request))
    for name in ("start_date", "end_date"):
        if name not in request.query:
            raise BadRequestError(f"{name} is required")
    shifts = emu.state.shifts(
        schedule,
        parse_date(request.query["start_date"], "start_date"),
        parse_date(request.query["end_date"], "end_date"),
    )
    return web.json_response(
        {
            "total_entries": len(shifts),
            "_embedded": {"shifts": shifts},
            "_links": {"self": hal.link(api_base(request) + "/" + request.path_qs.split("/", 3)[3])},
        }
    )


# ---------------------------------------------------------------------------------------------------- bookings


async def list_bookings(request: web.Request) -> web.Response:
    """GET /admin/{c}/bookings with every filter, paged (default 100 a page)."""
    emu, _, company_id = admin_token(request)
    q = request.query
    modified_since = (
        parse_datetime(q["modified_since"], "modified_since") if q.get("modified_since") else None
    )
    rows = emu.state.list_bookings(
        company_id,
        start_date=parse_date(q["start_date"], "start_date") if q.get("start_date") else None,
        end_date=parse_date(q["end_date"], "end_date") if q.get("end_date") else None,
        include_cancelled=parse_bool(q.get("include_cancelled", "false"), "include_cancelled"),
        modified_since=modified_since,
        person_id=query_int(request, "person_id"),
        resource_id=query_int(request, "resource_id"),
        service_id=query_int(request, "service_id"),
        slot_id=query_int(request, "slot_id"),
        children=parse_bool(q.get("children", "false"), "children"),
    )
    api = api_base(request)
    return paged(request, "bookings", rows, lambda b: hal.booking_json(emu.state, api, b), 100)


async def get_booking(request: web.Request) -> web.Response:
    """GET /admin/{c}/bookings/{id} (cancelled bookings stay readable)."""
    emu, _, company_id = admin_token(request)
    booking = emu.state.booking(company_id, path_id(request))
    return web.json_response(hal.booking_json(emu.state, api_base(request), booking))


async def create_booking(request: web.Request) -> web.Response:
    """POST /admin/{c}/bookings; 409 when the person or resource is busy."""
    emu, token, company_id = admin_token(request)
    body = await read_json(request)
    booking = emu.state.create_booking(
        company_id, body, booked_by=emu.state.admin_name(token), booked_by_email=token.email
    )
    emu.created(request, booking)
    return web.json_response(hal.booking_json(emu.state, api_base(request), booking), status=201)


async def update_booking(request: web.Request) -> web.Response:
    """PUT /admin/{c}/bookings/{id}: move, reassign, change duration, ``confirm: true`` a reservation."""
    emu, token, company_id = admin_token(request)
    body = await read_json(request)
    booking_id = path_id(request)
    changes = emu.state.update_booking(company_id, booking_id, body, who=token.email)
    booking = emu.state.booking(company_id, booking_id)
    emu.changed(request, changes)
    return web.json_response(hal.booking_json(emu.state, api_base(request), booking))


async def cancel_booking(request: web.Request) -> web.Response:
    """POST /admin/{c}/bookings/{id}/cancel {notify, cancel_reason} and DELETE /admin/{c}/bookings/{id}?notify=.

    The cancel link is templated ``{?notify,cancel_reason}``, so POST takes them from the query as well; the JSON
    body wins where both say something. An empty ``notify`` is as if it were not given.
    """
    emu, token, company_id = admin_token(request)
    body: dict[str, Any] = dict(request.query)
    if request.method == "POST":
        body.update(await read_json(request))
    if body.get("notify") not in (None, ""):
        parse_bool(body["notify"], "notify")  # accepted and checked; the emulator sends no e-mails
    reason = body.get("cancel_reason")
    if reason is not None and not isinstance(reason, str):
        raise BadRequestError("cancel_reason must be a string")
    booking_id = path_id(request)
    if emu.state.cancel_booking(company_id, booking_id, reason=reason, who=token.email):
        emu.cancelled(request, emu.state.booking(company_id, booking_id))
    booking = emu.state.booking(company_id, booking_id)
    return web.json_response(hal.booking_json(emu.state, api_base(request), booking))


# ---------------------------------------------------------------------------------------------------- blocks


async def block(request: web.Request) -> web.Response:
    """PUT /admin/{c}/people/{id}/block or /resources/{id}/block: a slot, or with ``booking: true`` the booking."""
    emu, token, company_id = admin_token(request)
    body = await read_json(request)
    kind = "person_id" if "/people/" in request.path else "resource_id"
    # Every body field is checked before anything changes: a 400 leaves no block behind and sends no webhook.
    note = body.get("private_note")
    if note is not None and not isinstance(note, str):
        raise BadRequestError("private_note must be a string")
    as_booking = parse_bool(body.get("booking", False), "booking")
    booking = emu.state.block(
        company_id,
        person_id=path_id(request) if kind == "person_id" else None,
        resource_id=path_id(request) if kind == "resource_id" else None,
        start_time=body.get("start_time"),
        end_time=body.get("end_time"),
        booked_by=emu.state.admin_name(token),
        booked_by_email=token.email,
        private_note=note,
    )
    emu.created(request, booking)
    api = api_base(request)
    if as_booking:
        return web.json_response(hal.booking_json(emu.state, api, booking), status=201)
    return web.json_response(hal.slot_json(emu.state, api, booking), status=201)


async def list_slots(request: web.Request) -> web.Response:
    """GET /admin/{c}/slots{?start_date,end_date,person_id,resource_id,page,per_page}: live blocks."""
    emu, _, company_id = admin_token(request)
    q = request.query
    rows = emu.state.list_slots(
        company_id,
        start_date=parse_date(q["start_date"], "start_date") if q.get("start_date") else None,
        end_date=parse_date(q["end_date"], "end_date") if q.get("end_date") else None,
        person_id=query_int(request, "person_id"),
        resource_id=query_int(request, "resource_id"),
    )
    api = api_base(request)
    return paged(request, "slots", rows, lambda b: hal.slot_json(emu.state, api, b), 30)


async def get_slot(request: web.Request) -> web.Response:
    """GET /admin/{c}/slots/{id}."""
    emu, _, company_id = admin_token(request)
    return web.json_response(
        hal.slot_json(emu.state, api_base(request), emu.state.slot(company_id, path_id(request)))
    )


async def move_slot(request: web.Request) -> web.Response:
    """PUT /admin/{c}/slots/{id} {start_time, end_time}."""
    emu, token, company_id = admin_token(request)
    body = await read_json(request)
    slot_id = path_id(request)
    moved = emu.state.move_slot(
        company_id, slot_id, body.get("start_time"), body.get("end_time"), who=token.email
    )
    booking = emu.state.slot(company_id, slot_id)
    emu.changed(request, [("modify", booking.snapshot())] if moved else [])
    return web.json_response(hal.slot_json(emu.state, api_base(request), booking))


async def delete_slot(request: web.Request) -> web.Response:
    """DELETE /admin/{c}/slots/{id}: unblock (later GETs of the slot are 404)."""
    emu, token, company_id = admin_token(request)
    slot_id = path_id(request)
    shown = hal.slot_json(emu.state, api_base(request), emu.state.slot(company_id, slot_id))
    booking = emu.state.delete_slot(company_id, slot_id, who=token.email)
    emu.cancelled(request, booking)
    return web.json_response(shown)


def add_routes(app: web.Application) -> None:
    """Register the admin API under every supported version prefix."""
    for version in VERSIONS:
        p = f"/api/{version}"
        a = p + r"/admin/{company_id:\d+}"
        i = r"{id:\d+}"
        app.router.add_post(f"{p}/login", login)
        app.router.add_post(f"{p}/login/admin", login)
        app.router.add_post(p + r"/login/admin/{company_id:\d+}", login)
        app.router.add_delete(f"{p}/login", logout)
        app.router.add_get(f"{a}/company", get_company)
        app.router.add_get(f"{a}/questions", list_questions)
        public = p + r"/{company_id:\d+}"
        app.router.add_get(f"{public}/questions", list_questions)
        app.router.add_get(f"{public}/questions/{i}", get_question)
        app.router.add_get(f"{public}/addresses/{i}", get_address)
        app.router.add_get(f"{a}/people", list_people)
        app.router.add_get(f"{a}/people/{i}", get_person)
        app.router.add_put(f"{a}/people/{i}/block", block)
        app.router.add_get(f"{a}/resources", list_resources)
        app.router.add_get(f"{a}/resources/{i}", get_resource)
        app.router.add_put(f"{a}/resources/{i}/block", block)
        app.router.add_get(f"{a}/services", list_services)
        app.router.add_get(f"{a}/services/{i}", get_service)
        app.router.add_get(f"{a}/schedules", list_schedules)
        app.router.add_get(f"{a}/schedules/{i}", get_schedule)
        app.router.add_get(f"{a}/schedules/{i}/shifts", get_shifts)
        app.router.add_get(f"{a}/bookings", list_bookings)
        app.router.add_post(f"{a}/bookings", create_booking)
        app.router.add_get(f"{a}/bookings/{i}", get_booking)
        app.router.add_put(f"{a}/bookings/{i}", update_booking)
        app.router.add_delete(f"{a}/bookings/{i}", cancel_booking)
        app.router.add_post(f"{a}/bookings/{i}/cancel", cancel_booking)
        app.router.add_get(f"{a}/slots", list_slots)
        app.router.add_get(f"{a}/slots/{i}", get_slot)
        app.router.add_put(f"{a}/slots/{i}", move_slot)
        app.router.add_delete(f"{a}/slots/{i}", delete_slot)
