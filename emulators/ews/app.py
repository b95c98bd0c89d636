"""The EWS emulator's HTTP application: SOAP dispatch, authentication, throttling, faults, schema checks."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from lxml import etree

from emulators.ews import control, soap
from emulators.ews.auth import Authenticator
from emulators.ews.context import Principal, RequestContext
from emulators.ews.errors import EwsError, SoapFault, server_busy
from emulators.ews.faults import REQUEST_KINDS, Budget, Faults
from emulators.ews.model import Store, decode_id
from emulators.ews.operations import HANDLERS, STREAMING_HANDLERS, load_all
from emulators.ews.schema import load_schema, violations
from emulators.ews.settings import EmulatorSettings
from emulators.ews.xml import (
    E_NS,
    MAX_REQUEST_BYTES,
    SOAP_NS,
    T_NS,
    XmlInputError,
    local,
    parse_request,
    q,
    to_bytes,
)

log = logging.getLogger("emulators.ews")

from emulators.ews.keys import EMULATOR  # noqa: E402


@dataclass
class Stats:
    operations: Counter[str] = field(default_factory=Counter)
    mailboxes: Counter[str] = field(default_factory=Counter)
    http_statuses: Counter[int] = field(default_factory=Counter)

    def reset(self) -> None:
        self.operations.clear()
        self.mailboxes.clear()
        self.http_statuses.clear()


class Emulator:
    """Everything one running emulator holds; ``reset()`` empties it."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.schema = load_schema()
        self.store = Store()
        self.faults = Faults()
        self.budget = Budget()
        self.stats = Stats()
        self.auth = Authenticator(self.store, settings)
        self.notifications: Any = None
        self._install_notifications()

    def _install_notifications(self) -> None:
        try:
            from emulators.ews.notifications import NotificationHub
        except ImportError:  # pragma: no cover - during bring-up only
            return
        self.notifications = NotificationHub(self)

    def reset(self) -> None:
        if self.notifications is not None:
            self.notifications.close_all()
        self.store = Store()
        self.faults = Faults()
        self.budget = Budget()
        self.stats.reset()
        self.auth.ntlm.close()
        self.auth = Authenticator(self.store, self.settings)
        self.settings.captured.clear()
        self._install_notifications()

    def capture(self, direction: str, operation: str, payload: bytes, client: str = "") -> None:
        """Keep an exchanged body for later schema checks (``client``: the sender's User-Agent, for requests)."""
        if self.settings.capture:
            self.settings.captured.append((direction, operation, payload, client))


def _xml_response(payload: bytes, status: int = 200) -> web.Response:
    return web.Response(body=payload, status=status, content_type="text/xml", charset="utf-8")


def _target_mailbox(emulator: Emulator, ctx: RequestContext, operation: etree._Element) -> str | None:
    """The mailbox a request is about, for statistics and fault matching."""
    if ctx.impersonated:
        return ctx.impersonated
    for address in operation.iter(q(T_NS, "EmailAddress")):
        if address.text:
            return address.text.strip().lower()
    for item_id in operation.iter(q(T_NS, "ItemId")):
        decoded = decode_id(item_id.get("Id", ""))
        mailbox = emulator.store.mailboxes.get(decoded.mailbox_num) if decoded else None
        if mailbox is not None:
            return mailbox.address
    if ctx.anchor_mailbox:
        return ctx.anchor_mailbox.lower()
    return ctx.acting_user


class SchemaValidationFault(SoapFault):
    """ErrorSchemaValidation: Exchange puts LineNumber, LinePosition and Violation straight into MessageXml."""

    def __init__(self, violation: str, line: int = 0, position: int = 0) -> None:
        super().__init__("ErrorSchemaValidation", f"The request failed schema validation: {violation}")
        self.violation = violation
        self.line = line
        self.position = position

    def payload(self, settings: EmulatorSettings) -> bytes:
        """The fault envelope, with exchangelib's (and the EWS Managed API's) view of where the request went wrong."""
        root = etree.fromstring(soap.fault(settings, self))
        detail = root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault/detail")
        assert detail is not None
        detail.find(f"{{{E_NS}}}Message").text = "The request failed schema validation."
        xml = etree.SubElement(detail, q(T_NS, "MessageXml"), nsmap={"t": T_NS})
        etree.SubElement(xml, q(T_NS, "LineNumber")).text = str(self.line)
        etree.SubElement(xml, q(T_NS, "LinePosition")).text = str(self.position)
        etree.SubElement(xml, q(T_NS, "Violation")).text = self.violation
        return to_bytes(root)


def _fault_payload(settings: EmulatorSettings, fault: SoapFault) -> bytes:
    if isinstance(fault, SchemaValidationFault):
        return fault.payload(settings)
    return soap.fault(settings, fault)


def _malformed(exc: XmlInputError) -> SchemaValidationFault:
    """A body lxml cannot parse (or refuses: DTD, entities) fails validation, as it does on Exchange."""
    line, position = getattr(exc.__cause__, "position", (0, 0))
    return SchemaValidationFault(str(exc), line, position)


def _request_violation(
    operation: etree._Element, raw: bytes, schema: etree.XMLSchema
) -> SchemaValidationFault | None:
    """Validate the operation element; the first violation with its line and position in the request as sent."""
    # A deep copy keeps each element's source line; validated as its own document, like the response check.
    document = etree.ElementTree(copy.deepcopy(operation))
    if schema.validate(document):
        return None
    error = schema.error_log[0]
    line = int(error.line or 0)
    position = 0
    # libxml2 keeps no columns for elements: find the offending start tag on its line (1-based, like .NET).
    name = (error.path or "").rsplit("/", 1)[-1].split("[", 1)[0].rsplit(":", 1)[-1]
    lines = raw.splitlines()
    if name and 0 < line <= len(lines):
        found = re.search(rb"<(?:[\w.-]+:)?" + re.escape(name.encode()) + rb"[\s/>]", lines[line - 1])
        position = found.start() + 1 if found else 0
    return SchemaValidationFault(error.message, line, position)


async def ews_endpoint(request: web.Request) -> web.StreamResponse:
    """POST /EWS/Exchange.asmx: one SOAP request, answered as Exchange would."""
    emulator = request.app[EMULATOR]
    settings = emulator.settings
    principal = emulator.auth.authenticate(request)
    if not isinstance(principal, Principal):
        emulator.stats.http_statuses[principal.status] += 1
        return principal
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        # Refused before reading: IIS's maxAllowedContentLength answers 413 from the headers alone.
        return _too_large(emulator)
    raw = await read_body(request)
    if raw is None:
        return _too_large(emulator)
    account = principal.name
    if not emulator.budget.enter(account, settings.max_concurrency):
        emulator.stats.operations["(throttled)"] += 1
        emulator.stats.http_statuses[500] += 1
        return _xml_response(soap.fault(settings, server_busy(settings_back_off(settings))), 500)
    held = [True]

    def release() -> None:
        # EWSMaxConcurrency does not apply to streaming (HangingConnectionLimit does): an open GetStreamingEvents
        # gives its slot back before it starts to wait.
        if held[0]:
            held[0] = False
            emulator.budget.leave(account)

    try:
        # The latency is spent inside the budget, as a slow server holds its concurrency slots.
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        return await _dispatch(emulator, request, principal, raw, release)
    finally:
        release()


async def read_body(request: web.Request, limit: int = MAX_REQUEST_BYTES) -> bytes | None:
    """The whole request body, or None as soon as it grows past ``limit`` (the rest is never held in memory)."""
    # StreamReader.read(n) returns whatever has arrived (at most n), so a large body comes in several reads;
    # a chunked body has no length up front, so the limit is checked as it arrives.
    parts: list[bytes] = []
    size = 0
    while True:
        part = await request.content.read(limit + 1 - size)
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
        if size > limit:
            return None


def _too_large(emulator: Emulator) -> web.Response:
    emulator.stats.http_statuses[413] += 1
    return web.Response(status=413, text="The request is larger than the 10 MB limit.")


def settings_back_off(settings: EmulatorSettings) -> int:
    """The back-off a budget-exceeded request is told to wait."""
    # Exchange's budget back-off is usually a few hundred milliseconds to a few seconds under light load.
    return 500


async def _dispatch(
    emulator: Emulator, request: web.Request, principal: Principal, raw: bytes, release: Any = None
) -> web.StreamResponse:
    settings = emulator.settings
    operation_name = "(invalid)"
    try:
        try:
            root = parse_request(raw)
        except XmlInputError as exc:
            emulator.capture("request", operation_name, raw, request.headers.get("User-Agent", ""))
            raise _malformed(exc) from exc
        body = root.find(q(SOAP_NS, "Body")) if local(root) == "Envelope" else None
        if body is None or not len(body):
            raise SchemaValidationFault(
                "The request is not a SOAP 1.1 envelope with a Body.", root.sourceline or 0, 1
            )
        operation = next((el for el in body if isinstance(el.tag, str)), None)
        if operation is None:
            raise SchemaValidationFault("The SOAP Body is empty.", body.sourceline or 0, 1)
        operation_name = local(operation)
        emulator.capture(
            "request", operation_name, etree.tostring(operation), request.headers.get("User-Agent", "")
        )
        problem = _request_violation(operation, raw, emulator.schema)
        if problem is not None:
            raise problem
        ctx = RequestContext(emulator.store, settings, principal, emulator=emulator)
        ctx.read_soap_header(root.find(q(SOAP_NS, "Header")))
        ctx.anchor_mailbox = request.headers.get("X-AnchorMailbox")
        ctx.headers = dict(request.headers)
        ctx.check_impersonation()
        mailbox = _target_mailbox(emulator, ctx, operation)
        emulator.stats.operations[operation_name] += 1
        if mailbox:
            emulator.stats.mailboxes[mailbox] += 1
        injected = await _apply_request_faults(emulator, request, operation_name, mailbox)
        if injected is not None:
            return injected
        if operation_name in STREAMING_HANDLERS:
            if operation_name == "GetStreamingEvents" and release is not None:
                release()
            return await STREAMING_HANDLERS[operation_name](ctx, operation, request)
        handler = HANDLERS.get(operation_name)
        if handler is None:
            raise SoapFault(
                "ErrorInvalidRequest",
                f"The request is invalid: {operation_name} is not supported by this server.",
            )
        envelope, response_body = soap.envelope(settings)
        try:
            try:
                handler(ctx, operation, response_body)
            except (ValueError, OverflowError) as exc:
                # A schema-valid value no calendar can hold, outside any per-item message.
                raise EwsError(
                    "ErrorInvalidValueForProperty", f"A value in the request is not valid: {exc}"
                ) from exc
        except EwsError as err:
            # An error that is not about one input fails the request's single response message.
            for node in list(response_body):
                response_body.remove(node)
            name = "GetUserAvailability" if operation_name == "GetUserAvailabilityRequest" else operation_name
            _, messages = soap.response(response_body, name)
            soap.error(messages, name, err)
        return _respond(emulator, operation_name, envelope)
    except SoapFault as fault:
        payload = _fault_payload(settings, fault)
        emulator.capture("fault", operation_name, payload)
        emulator.stats.http_statuses[fault.status] += 1
        return _xml_response(payload, fault.status)


def _respond(emulator: Emulator, operation_name: str, envelope: etree._Element) -> web.Response:
    body = envelope.find(q(SOAP_NS, "Body"))
    message = body[0] if body is not None and len(body) else None
    if message is not None:
        emulator.capture("response", operation_name, etree.tostring(message))
        if emulator.settings.validate_responses:
            problems = violations(message, emulator.schema)
            if problems:
                # Fail loudly: a response Exchange would never send is a bug in the emulator, not the client.
                text = f"EWS emulator bug: the {operation_name} response does not validate: {problems}"
                print(text, file=sys.stderr, flush=True)
                return web.Response(status=500, text=text)
    emulator.stats.http_statuses[200] += 1
    return _xml_response(to_bytes(envelope))


async def _apply_request_faults(
    emulator: Emulator, request: web.Request, operation: str, mailbox: str | None
) -> web.StreamResponse | None:
    rule = emulator.faults.take(REQUEST_KINDS, operation, mailbox)
    if rule is None:
        return None
    if rule.kind == "delay":
        await asyncio.sleep(rule.delay_ms / 1000)
        return None
    if rule.kind == "server_busy":
        emulator.stats.http_statuses[500] += 1
        return _xml_response(soap.fault(emulator.settings, server_busy(rule.back_off_ms)), 500)
    if rule.kind == "http_503":
        # IIS answers 503 when EWS requests queue up; Retry-After is in whole seconds.
        emulator.stats.http_statuses[503] += 1
        retry_after = max(1, round(rule.back_off_ms / 1000))
        return web.Response(status=503, text="Service Unavailable", headers={"Retry-After": str(retry_after)})
    if rule.kind == "http_400":
        # HTTP.sys's answer to a request it cannot parse (a header value with a control character, say).
        emulator.stats.http_statuses[400] += 1
        return web.Response(status=400, text="Bad Request - Invalid Header", content_type="text/html")
    # connection_reset: drop the TCP connection without an answer.
    if request.transport is not None:
        request.transport.abort()
    raise ConnectionResetError("injected connection_reset")


async def not_allowed(request: web.Request) -> web.Response:
    return web.Response(status=405, headers={"Allow": "POST"}, text="EWS accepts POST only.")


def build_app(settings: EmulatorSettings | None = None) -> web.Application:
    """The aiohttp application: EWS, autodiscover, the OAuth token endpoint and the control plane."""
    load_all()
    settings = settings or EmulatorSettings()
    app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1024 * 1024)
    app[EMULATOR] = Emulator(settings)
    for path in ("/EWS/Exchange.asmx", "/ews/exchange.asmx"):
        app.router.add_post(path, ews_endpoint)
        app.router.add_get(path, not_allowed)
    extras = _optional_routes()
    for register in extras:
        register(app)
    control.register(app)
    return app


def _optional_routes() -> list[Any]:
    routes = []
    try:
        from emulators.ews import autodiscover

        routes.append(autodiscover.register)
    except ImportError:
        pass
    try:
        from emulators.ews import oauth

        routes.append(oauth.register)
    except ImportError:
        pass
    return routes
