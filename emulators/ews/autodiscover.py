"""SOAP Autodiscover: ``GetUserSettings`` at ``/autodiscover/autodiscover.svc``, authenticated like EWS.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getusersettings-operation-soap

exchangelib 5.x only speaks SOAP Autodiscover (no POX ``autodiscover.xml``). It reads ``ExternalEwsUrl`` (where to
send EWS requests) and ``EwsSupportedSchemas`` (the newest value becomes its API version); clients that group
mailboxes for streaming affinity also read ``GroupingInformation``.
"""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from emulators.ews.context import Principal
from emulators.ews.keys import EMULATOR
from emulators.ews.xml import (
    AUTODISCOVER_NS,
    MAX_REQUEST_BYTES,
    SOAP_NS,
    WSA_NS,
    XSI_NS,
    XmlInputError,
    local,
    parse_request,
    q,
    to_bytes,
)

PATHS = ("/autodiscover/autodiscover.svc", "/Autodiscover/Autodiscover.svc")
ACTION = "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse"
# What an Exchange 2016 CU answers; exchangelib adopts the newest as its RequestServerVersion.
SUPPORTED_SCHEMAS = "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2015, Exchange2016"
# One back-end group: every mailbox lives on the same (emulated) server, so one affinity group suffices.
GROUPING_INFORMATION = "EMULATOR-GRP1"


def _a(tag: str) -> str:
    return q(AUTODISCOVER_NS, tag)


def _add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _a(tag))
    if text is not None:
        el.text = text
    return el


def _envelope(build: tuple[int, int, int, int]) -> tuple[etree._Element, etree._Element]:
    """An autodiscover response envelope: WS-Addressing Action and the autodiscover-namespace ServerVersionInfo."""
    root = etree.Element(q(SOAP_NS, "Envelope"), nsmap={"s": SOAP_NS, "a": WSA_NS})
    header = etree.SubElement(root, q(SOAP_NS, "Header"))
    action = etree.SubElement(header, q(WSA_NS, "Action"), {q(SOAP_NS, "mustUnderstand"): "1"})
    action.text = ACTION
    info = etree.SubElement(header, _a("ServerVersionInfo"), nsmap={"h": AUTODISCOVER_NS})
    for name, value in zip(
        ("MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber"), build, strict=True
    ):
        _add(info, name, str(value))
    _add(info, "Version", "Exchange2015")
    body = etree.SubElement(root, q(SOAP_NS, "Body"))
    return root, body


def _fault(code: str, message: str) -> web.Response:
    root = etree.Element(q(SOAP_NS, "Envelope"), nsmap={"s": SOAP_NS})
    fault = etree.SubElement(etree.SubElement(root, q(SOAP_NS, "Body")), q(SOAP_NS, "Fault"))
    etree.SubElement(fault, "faultcode").text = f"s:{code}"
    etree.SubElement(fault, "faultstring").text = message
    return web.Response(body=to_bytes(root), status=500, content_type="text/xml", charset="utf-8")


def _user_settings(request: web.Request, address: str, display_name: str) -> dict[str, str]:
    """The settings this emulator knows for a user; the EWS URL is the one the client used to reach us."""
    ews_url = f"{request.scheme}://{request.host}/EWS/Exchange.asmx"
    return {
        "UserDisplayName": display_name,
        "AutoDiscoverSMTPAddress": address,
        "ExternalEwsUrl": ews_url,
        "InternalEwsUrl": ews_url,
        "EwsSupportedSchemas": SUPPORTED_SCHEMAS,
        "GroupingInformation": GROUPING_INFORMATION,
        "CasVersion": "15.01.2507.006",
    }


def _user_response(parent: etree._Element, request: web.Request, address: str, requested: list[str]) -> None:
    store = request.app[EMULATOR].store
    account = store.accounts.get(address.strip().lower())
    response = _add(parent, "UserResponse")
    if account is None:
        # exchangelib maps InvalidUser to ErrorNonExistentMailbox.
        _add(response, "ErrorCode", "InvalidUser")
        _add(response, "ErrorMessage", f"Invalid user: '{address}'")
        _add(response, "RedirectTarget")
        _add(response, "UserSettingErrors")
        _add(response, "UserSettings")
        return
    known = _user_settings(request, account.address, account.display_name)
    _add(response, "ErrorCode", "NoError")
    _add(response, "ErrorMessage", "No error.")
    _add(response, "RedirectTarget")
    errors = _add(response, "UserSettingErrors")
    settings = _add(response, "UserSettings")
    for name in requested or list(known):
        if name in known:
            setting = etree.SubElement(
                settings, _a("UserSetting"), {q(XSI_NS, "type"): "StringSetting"}, nsmap={"i": XSI_NS}
            )
            _add(setting, "Name", name)
            _add(setting, "Value", known[name])
        else:
            # Exchange reports each requested setting it has no value for; clients ignore these.
            error = _add(errors, "UserSettingError")
            _add(error, "ErrorCode", "SettingIsNotAvailable")
            _add(error, "ErrorMessage", f"User setting '{name}' is not available. ")
            _add(error, "SettingName", name)


async def get_user_settings(request: web.Request) -> web.StreamResponse:
    """POST /autodiscover/autodiscover.svc: GetUserSettings for each requested user, in order."""
    emulator = request.app[EMULATOR]
    principal = emulator.auth.authenticate(request)
    if not isinstance(principal, Principal):
        return principal
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        return web.Response(status=413, text="The request is larger than the 10 MB limit.")
    from emulators.ews.app import read_body  # app imports this module; import late to avoid a cycle

    raw = await read_body(request)
    if raw is None:
        return web.Response(status=413, text="The request is larger than the 10 MB limit.")
    try:
        root = parse_request(raw)
    except XmlInputError as exc:
        return _fault("Client", str(exc))
    body = root.find(q(SOAP_NS, "Body")) if local(root) == "Envelope" else None
    message = next((el for el in body if isinstance(el.tag, str)), None) if body is not None else None
    if message is None or message.tag != _a("GetUserSettingsRequestMessage"):
        name = local(message) if message is not None else "(none)"
        return _fault("Client", f"The autodiscover operation {name} is not supported by this server.")
    users = [el.text.strip() for el in message.iter(_a("Mailbox")) if el.text and el.text.strip()]
    requested = [el.text.strip() for el in message.iter(_a("Setting")) if el.text and el.text.strip()]
    if not users:
        return _fault("Client", "GetUserSettings needs at least one user.")
    envelope, response_body = _envelope(emulator.settings.build)
    out = etree.SubElement(response_body, _a("GetUserSettingsResponseMessage"), nsmap={None: AUTODISCOVER_NS})
    response = _add(out, "Response")
    _add(response, "ErrorCode", "NoError")
    _add(response, "ErrorMessage")
    user_responses = _add(response, "UserResponses")
    for user in users:
        _user_response(user_responses, request, user, requested)
    emulator.stats.operations["GetUserSettings"] += 1
    return web.Response(body=to_bytes(envelope), content_type="text/xml", charset="utf-8")


async def _not_allowed(request: web.Request) -> web.Response:
    return web.Response(status=405, headers={"Allow": "POST"}, text="Autodiscover accepts POST only.")


def register(app: web.Application) -> None:
    """Add the autodiscover routes."""
    for path in PATHS:
        app.router.add_post(path, get_user_settings)
        app.router.add_get(path, _not_allowed)
