"""The control plane: JSON over HTTP under /_emulator/, loopback only, for tests, the local stack and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from emulators.ews import recurrence, timezones
from emulators.ews.errors import EwsError
from emulators.ews.faults import STREAM_KINDS, FaultRule
from emulators.ews.itemxml import DISTINGUISHED_SETS
from emulators.ews.keys import EMULATOR
from emulators.ews.model import (
    FREE_BUSY_VALUES,
    SENSITIVITY_VALUES,
    Attendee,
    CalendarFolder,
    CalendarItem,
    ExtKey,
    Mailbox,
    OAuthApp,
    Occurrence,
    decode_id,
    normalize_address,
)
from emulators.ews.xml import format_datetime, parse_datetime

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=None))


def _route(fn: Handler) -> Handler:
    """Loopback only; ControlError and bad JSON become 4xx with a message."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        remote = request.remote or ""
        if remote not in _LOOPBACK and not remote.startswith("127."):
            return _json({"error": "the control plane answers on loopback only"}, 403)
        try:
            return await fn(request)
        except ControlError as exc:
            return _json({"error": exc.message}, exc.status)
        except EwsError as exc:
            return _json(
                {"error": exc.message, "code": exc.code}, 404 if exc.code == "ErrorItemNotFound" else 400
            )

    return wrapped


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ControlError(400, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError(400, "the body must be a JSON object")
    return data


def _require(data: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if not data.get(n)]
    if missing:
        raise ControlError(400, f"missing fields: {missing}")


# ---- items as JSON -------------------------------------------------------------------------------------------------


def _ext_to_json(key: ExtKey, value: str | list[str]) -> dict[str, Any]:
    prop_set, name, prop_type = key
    entry: dict[str, Any] = {"property_type": prop_type, "value": value}
    if prop_set.startswith("guid:"):
        entry["property_set_id"] = prop_set[5:]
    elif prop_set.startswith("ds:"):
        entry["distinguished_property_set_id"] = prop_set[3:]
    kind, _, raw = name.partition(":")
    entry[{"name": "property_name", "id": "property_id", "tag": "property_tag"}[kind]] = (
        int(raw) if kind == "id" else raw
    )
    return entry


def _ext_from_json(entries: Any) -> dict[ExtKey, str | list[str]]:
    if not isinstance(entries, list):
        raise ControlError(400, "extended_properties must be a list of objects")
    result: dict[ExtKey, str | list[str]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "value" not in entry:
            raise ControlError(400, "each extended property needs a value")
        if str(entry.get("property_set_id") or "").lower() in DISTINGUISHED_SETS:
            prop_set = "ds:" + DISTINGUISHED_SETS[str(entry["property_set_id"]).lower()]
        elif entry.get("property_set_id"):
            prop_set = "guid:" + str(entry["property_set_id"]).lower()
        elif entry.get("distinguished_property_set_id"):
            prop_set = "ds:" + str(entry["distinguished_property_set_id"])
        else:
            prop_set = ""
        if "property_name" in entry:
            name = "name:" + str(entry["property_name"])
        elif "property_id" in entry:
            name = f"id:{int(entry['property_id'])}"
        elif "property_tag" in entry:
            name = f"tag:{int(str(entry['property_tag']), 0):#06x}"
        else:
            raise ControlError(400, "each extended property needs property_name, property_id or property_tag")
        result[(prop_set, name, str(entry.get("property_type", "String")))] = entry["value"]
    return result


def item_to_json(view: CalendarItem | Occurrence) -> dict[str, Any]:
    """An item (or an expanded occurrence) as the control plane shows it."""
    item = view.master if isinstance(view, Occurrence) else view
    data: dict[str, Any] = {
        "id": view.item_id,
        "change_key": item.change_key,
        "subject": item.subject,
        "body": item.body,
        "body_type": item.body_type,
        "start": format_datetime(view.start),
        "end": format_datetime(view.end),
        "is_all_day": item.is_all_day,
        "legacy_free_busy_status": item.legacy_free_busy_status,
        "sensitivity": item.sensitivity,
        "location": item.location,
        "categories": list(item.categories),
        "calendar_item_type": "Occurrence" if isinstance(view, Occurrence) else item.calendar_item_type,
        "recurrence": recurrence.to_json(item) if item.recurrence is not None else None,
        "extended_properties": [_ext_to_json(k, v) for k, v in item.extended_properties.items()],
        "start_timezone": item.start_timezone,
        "end_timezone": item.end_timezone,
        "uid": item.uid,
        "required_attendees": [a.email for a in item.required_attendees],
        "optional_attendees": [a.email for a in item.optional_attendees],
        "folder": item.mailbox.folder_id(item.folder),
    }
    if item.master is not None or isinstance(view, Occurrence):
        data["original_start"] = format_datetime(view.original_start)  # type: ignore[arg-type]
    if item.recurrence is not None:
        data["modified_occurrences"] = [item_to_json(e) for e in item.exceptions.values()]
        data["deleted_occurrences"] = sorted(format_datetime(d) for d in item.deleted_occurrences)
    return data


_JSON_FIELDS = {
    "subject",
    "body",
    "body_type",
    "start",
    "end",
    "is_all_day",
    "legacy_free_busy_status",
    "sensitivity",
    "location",
    "categories",
    "recurrence",
    "extended_properties",
    "start_timezone",
    "end_timezone",
    "uid",
    "required_attendees",
    "optional_attendees",
    "time_zone",
}


def fields_from_json(data: dict[str, Any], mailbox: Mailbox, creating: bool) -> dict[str, Any]:
    """Validate control-plane item JSON into CalendarItem field values."""
    unknown = set(data) - _JSON_FIELDS - {"id", "change_key", "calendar_item_type", "folder"}
    if unknown:
        raise ControlError(400, f"unknown item fields: {sorted(unknown)}")
    fields: dict[str, Any] = {}
    try:
        for name in ("start", "end"):
            if name in data:
                fields[name] = parse_datetime(str(data[name]))
    except ValueError as exc:
        raise ControlError(400, f"start and end must be ISO 8601 date-times: {exc}") from exc
    if creating and ("start" not in fields or "end" not in fields):
        raise ControlError(400, "start and end are required")
    for name in ("subject", "body", "location", "uid"):
        if name in data:
            fields[name] = data[name] if data[name] is None and name == "location" else str(data[name] or "")
    if "body_type" in data:
        if data["body_type"] not in ("HTML", "Text"):
            raise ControlError(400, "body_type must be HTML or Text")
        fields["body_type"] = data["body_type"]
    if "is_all_day" in data:
        fields["is_all_day"] = bool(data["is_all_day"])
    if "legacy_free_busy_status" in data:
        if data["legacy_free_busy_status"] not in FREE_BUSY_VALUES:
            raise ControlError(400, f"legacy_free_busy_status must be one of {list(FREE_BUSY_VALUES)}")
        fields["legacy_free_busy_status"] = data["legacy_free_busy_status"]
    if "sensitivity" in data:
        if data["sensitivity"] not in SENSITIVITY_VALUES:
            raise ControlError(400, f"sensitivity must be one of {list(SENSITIVITY_VALUES)}")
        fields["sensitivity"] = data["sensitivity"]
    if "categories" in data:
        fields["categories"] = [str(c) for c in data["categories"] or []]
    for name in ("required_attendees", "optional_attendees"):
        if name in data:
            fields[name] = [Attendee(str(a)) for a in data[name] or []]
    if "extended_properties" in data:
        fields["extended_properties"] = _ext_from_json(data["extended_properties"])
    zone = data.get("time_zone") or data.get("start_timezone")
    for given in (zone, data.get("end_timezone")):
        if given and not timezones.is_known(str(given)):
            raise ControlError(
                400, f"unknown time zone {given!r}: use a Windows zone id such as 'GMT Standard Time'"
            )
    if zone:
        fields["start_timezone"] = str(zone)
        fields["end_timezone"] = str(data.get("end_timezone") or zone)
    if data.get("recurrence") is not None:
        start = fields.get("start")
        if start is None:
            raise ControlError(400, "a recurrence needs the series start")
        try:
            fields["recurrence"] = recurrence.from_json(
                data["recurrence"], start, fields.get("start_timezone") or mailbox.time_zone
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ControlError(400, f"invalid recurrence: {exc}") from exc
    elif "recurrence" in data and not creating:
        fields["recurrence"] = None
    return fields


# ---- routes --------------------------------------------------------------------------------------------------------


def _emulator(request: web.Request) -> Any:
    return request.app[EMULATOR]


def _mailbox(request: web.Request) -> Mailbox:
    mailbox = _emulator(request).store.mailbox(request.match_info["address"])
    if mailbox is None:
        raise ControlError(404, f"no mailbox {request.match_info['address']}")
    return mailbox


@_route
async def reset(request: web.Request) -> web.Response:
    _emulator(request).reset()
    return _json({"reset": True})


@_route
async def add_account(request: web.Request) -> web.Response:
    data = await _body(request)
    _require(data, "address", "password")
    if "@" not in str(data["address"]):
        raise ControlError(400, "address must be an e-mail address")
    store = _emulator(request).store
    try:
        account = store.add_account(
            str(data["address"]),
            str(data["password"]),
            data.get("display_name"),
            str(data.get("time_zone") or "UTC"),
        )
    except KeyError as exc:
        raise ControlError(409, f"an account {data['address']} exists already") from exc
    return _json(
        {
            "address": account.address,
            "display_name": account.display_name,
            "time_zone": account.mailbox.time_zone,
        },
        201,
    )


@_route
async def add_impersonation(request: web.Request) -> web.Response:
    data = await _body(request)
    _require(data, "service_account")
    mailboxes = data.get("mailboxes") or []
    if not isinstance(mailboxes, list) or not mailboxes:
        raise ControlError(400, 'mailboxes must be ["*"] or a list of addresses')
    store = _emulator(request).store
    if store.mailbox(str(data["service_account"])) is None:
        raise ControlError(404, f"no account {data['service_account']}")
    store.grant_impersonation(str(data["service_account"]), [str(m) for m in mailboxes])
    return _json(
        {"service_account": normalize_address(str(data["service_account"])), "mailboxes": mailboxes}, 201
    )


@_route
async def add_delegate(request: web.Request) -> web.Response:
    data = await _body(request)
    _require(data, "owner", "delegate", "permission")
    if data["permission"] not in ("Editor", "Author", "Reviewer", "None"):
        raise ControlError(400, "permission must be Editor, Author, Reviewer or None")
    store = _emulator(request).store
    for who in ("owner", "delegate"):
        if store.mailbox(str(data[who])) is None:
            raise ControlError(404, f"no account {data[who]}")
    store.delegates[(normalize_address(str(data["owner"])), normalize_address(str(data["delegate"])))] = data[
        "permission"
    ]
    return _json(data, 201)


@_route
async def add_oauth_app(request: web.Request) -> web.Response:
    data = await _body(request)
    _require(data, "tenant_id", "client_id", "client_secret")
    mailboxes = data.get("mailboxes") or ["*"]
    app = OAuthApp(
        str(data["tenant_id"]),
        str(data["client_id"]),
        str(data["client_secret"]),
        None if "*" in mailboxes else {normalize_address(str(m)) for m in mailboxes},
    )
    _emulator(request).store.oauth_apps[app.client_id] = app
    return _json({"tenant_id": app.tenant_id, "client_id": app.client_id, "mailboxes": mailboxes}, 201)


@_route
async def add_fault(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        rule = FaultRule.from_json(data)
    except (ValueError, TypeError) as exc:
        raise ControlError(400, str(exc)) from exc
    emulator = _emulator(request)
    if rule.kind in STREAM_KINDS and emulator.notifications is not None:
        # Stream faults act on what is open or subscribed right now (and, for missed_events, on the next call).
        emulator.notifications.inject(rule)
    else:
        emulator.faults.add(rule)
    return _json(
        {"kind": rule.kind, "operation": rule.operation, "mailbox": rule.mailbox, "count": rule.count}, 201
    )


@_route
async def clear_faults(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    emulator.faults.clear()
    if emulator.notifications is not None:
        emulator.notifications.clear_faults()
    return _json({"cleared": True})


def _folder_name(mailbox: Mailbox, given: Any) -> str:
    """The calendar folder a control-plane ``folder`` / ``parent`` names: its FolderId, or ``calendar`` (the default,
    also when none is given) or ``msgfolderroot`` where a parent is meant."""
    if given in (None, "", "calendar"):
        return "calendar"
    if given == "msgfolderroot":
        return "msgfolderroot"
    decoded = decode_id(str(given))
    if decoded is None or decoded.kind != "folder" or decoded.mailbox_num != mailbox.num:
        raise ControlError(404, f"no folder {given} in {mailbox.address}")
    if not mailbox.is_calendar(decoded.folder):
        raise ControlError(404, f"no calendar folder {given} in {mailbox.address}")
    return decoded.folder


def folder_to_json(mailbox: Mailbox, folder: CalendarFolder) -> dict[str, Any]:
    """A calendar folder as the control plane shows it."""
    return {
        "id": mailbox.folder_id(folder.name),
        "display_name": folder.display_name,
        "parent": mailbox.folder_id(folder.parent),
        "folder_class": "IPF.Appointment",
        "total_count": len(mailbox.items_in(folder.name)),
        "child_folder_count": sum(1 for f in mailbox.folders.values() if f.parent == folder.name),
    }


@_route
async def list_folders(request: web.Request) -> web.Response:
    mailbox = _mailbox(request)
    return _json([folder_to_json(mailbox, f) for f in mailbox.folders.values()])


@_route
async def create_folder(request: web.Request) -> web.Response:
    mailbox = _mailbox(request)
    data = await _body(request)
    _require(data, "display_name")
    unknown = set(data) - {"display_name", "parent"}
    if unknown:
        raise ControlError(400, f"unknown folder fields: {sorted(unknown)}")
    name = str(data["display_name"]).strip()
    if not name:
        raise ControlError(400, "display_name must not be empty")
    parent = _folder_name(mailbox, data.get("parent"))
    try:
        folder = _emulator(request).store.add_folder(mailbox, name, parent)
    except EwsError as exc:
        status = 409 if exc.code == "ErrorFolderExists" else 400
        raise ControlError(status, exc.message) from exc
    return _json(folder_to_json(mailbox, folder), 201)


@_route
async def list_items(request: web.Request) -> web.Response:
    mailbox = _mailbox(request)
    folder = _folder_name(mailbox, request.query.get("folder"))
    start, end = request.query.get("start"), request.query.get("end")
    if start or end:
        from emulators.ews.operations.find_item import calendar_view

        try:
            window_start = (
                parse_datetime(start) if start else datetime.now().astimezone() - timedelta(days=365)
            )
            window_end = parse_datetime(end) if end else window_start + timedelta(days=730)
        except ValueError as exc:
            raise ControlError(400, f"start and end must be ISO 8601 date-times: {exc}") from exc
        views = calendar_view(mailbox, window_start, window_end, folder)
        return _json([item_to_json(v) for v in views])
    items = sorted(mailbox.items_in(folder), key=lambda i: (i.start, i.num))
    return _json([item_to_json(i) for i in items])


@_route
async def create_item(request: web.Request) -> web.Response:
    mailbox = _mailbox(request)
    data = await _body(request)
    folder = _folder_name(mailbox, data.get("folder"))
    fields = fields_from_json(data, mailbox, creating=True)
    if fields["end"] < fields["start"]:
        raise ControlError(400, "end is before start")
    fields.setdefault("organizer", mailbox.address)
    item = _emulator(request).store.create_item(mailbox, fields, folder)
    return _json(item_to_json(item), 201)


def _owned(request: web.Request, mailbox: Mailbox) -> CalendarItem | Occurrence:
    item = _emulator(request).store.find_item(request.match_info["item_id"])
    owner = item.master.mailbox if isinstance(item, Occurrence) else item.mailbox
    if owner is not mailbox:
        raise ControlError(404, "no such item in that mailbox")
    return item


@_route
async def get_item(request: web.Request) -> web.Response:
    mailbox = _mailbox(request)
    return _json(item_to_json(_owned(request, mailbox)))


@_route
async def patch_item(request: web.Request) -> web.Response:
    mailbox = _mailbox(request)
    item = _owned(request, mailbox)
    data = await _body(request)
    owner = item.master if isinstance(item, Occurrence) else item
    if "folder" in data and _folder_name(mailbox, data["folder"]) != owner.folder:
        raise ControlError(400, "items are not moved between folders; delete and create instead")
    fields = fields_from_json(data, mailbox, creating=False)
    start, end = fields.get("start", item.start), fields.get("end", item.end)
    if end < start:
        raise ControlError(400, "end is before start")
    store = _emulator(request).store
    updated = (
        store.modify_occurrence(item, fields)
        if isinstance(item, Occurrence)
        else store.update_item(item, fields)
    )
    return _json(item_to_json(updated))


@_route
async def delete_item(request: web.Request) -> web.Response:
    mailbox = _mailbox(request)
    item = _owned(request, mailbox)
    _emulator(request).store.delete_item(item)
    return web.Response(status=204)


@_route
async def stats(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    notifications = emulator.notifications.stats() if emulator.notifications is not None else {}
    return _json(
        {
            "operations": dict(emulator.stats.operations),
            "mailboxes": dict(emulator.stats.mailboxes),
            "http_statuses": {str(k): v for k, v in emulator.stats.http_statuses.items()},
            "faults_fired": dict(emulator.faults.fired),
            "accounts": len(emulator.store.accounts),
            "items": sum(len(m.items) for m in emulator.store.mailboxes.values()),
            **notifications,
        }
    )


_CONFIG_FIELDS = {
    "latency_ms": int,
    "max_concurrency": int,
    "max_streaming_connections": int,
    "max_subscriptions_per_connection": int,
    "subscription_idle_seconds": float,
    "heartbeat_seconds": float,
    "find_count_limit": int,
    "token_lifetime_seconds": int,
    "validate_responses": bool,
    "capture": bool,
}


@_route
async def config(request: web.Request) -> web.Response:
    settings = _emulator(request).settings
    if request.method == "POST":
        data = await _body(request)
        unknown = set(data) - set(_CONFIG_FIELDS)
        if unknown:
            raise ControlError(400, f"unknown settings: {sorted(unknown)}")
        for name, value in data.items():
            try:
                setattr(settings, name, _CONFIG_FIELDS[name](value))
            except (TypeError, ValueError) as exc:
                raise ControlError(400, f"{name}: {exc}") from exc
    return _json({name: getattr(settings, name) for name in _CONFIG_FIELDS})


def register(app: web.Application) -> None:
    """Add the /_emulator/ routes."""
    r = app.router
    r.add_post("/_emulator/reset", reset)
    r.add_post("/_emulator/accounts", add_account)
    r.add_post("/_emulator/impersonation", add_impersonation)
    r.add_post("/_emulator/delegates", add_delegate)
    r.add_post("/_emulator/oauth-apps", add_oauth_app)
    r.add_post("/_emulator/faults", add_fault)
    r.add_delete("/_emulator/faults", clear_faults)
    r.add_get("/_emulator/mailboxes/{address}/folders", list_folders)
    r.add_post("/_emulator/mailboxes/{address}/folders", create_folder)
    r.add_get("/_emulator/mailboxes/{address}/items", list_items)
    r.add_post("/_emulator/mailboxes/{address}/items", create_item)
    r.add_get("/_emulator/mailboxes/{address}/items/{item_id}", get_item)
    r.add_patch("/_emulator/mailboxes/{address}/items/{item_id}", patch_item)
    r.add_delete("/_emulator/mailboxes/{address}/items/{item_id}", delete_item)
    r.add_get("/_emulator/stats", stats)
    r.add_get("/_emulator/config", config)
    r.add_post("/_emulator/config", config)
