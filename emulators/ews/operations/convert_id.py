"""ConvertId: between id formats. exchangelib also sends a dummy one to learn the server version.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/convertid-operation
"""

from __future__ import annotations

import base64

from lxml import etree

from emulators.ews.context import RequestContext
from emulators.ews.errors import EwsError
from emulators.ews.model import decode_id
from emulators.ews.operations import operation
from emulators.ews.operations._common import each_message
from emulators.ews.soap import response
from emulators.ews.xml import M_NS, XSI_NS, child, m, sub

_FORMATS = ("EwsId", "EwsLegacyId", "EntryId", "HexEntryId", "StoreId", "OwaId")


def _to_raw(value: str, fmt: str) -> bytes:
    try:
        if fmt == "HexEntryId":
            return bytes.fromhex(value)
        return base64.b64decode(value.encode(), validate=True)
    except ValueError as exc:
        raise EwsError("ErrorInvalidIdMalformed", "Id is malformed.") from exc


def _from_raw(raw: bytes, fmt: str) -> str:
    return raw.hex().upper() if fmt == "HexEntryId" else base64.b64encode(raw).decode()


@operation("ConvertId")
def convert_id(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    destination = request.get("DestinationFormat", "EwsId")
    _, messages = response(body, "ConvertId")
    sources = [el for el in child(request, M_NS, "SourceIds") if isinstance(el.tag, str)]  # type: ignore[union-attr]

    def handle(source: etree._Element, message: etree._Element) -> None:
        fmt = source.get("Format", "EwsId")
        raw = _to_raw(source.get("Id", ""), fmt)
        # Our ids are the same bytes in every format; only their spelling differs.
        if decode_id(base64.b64encode(raw).decode()) is None:
            raise EwsError("ErrorInvalidIdMalformed", "Id is malformed.")
        alternate = sub(
            message,
            m("AlternateId"),
            Format=destination,
            Id=_from_raw(raw, destination),
            Mailbox=source.get("Mailbox", ""),
        )
        alternate.set(f"{{{XSI_NS}}}type", "t:AlternateIdType")

    each_message(messages, "ConvertId", sources, handle)
