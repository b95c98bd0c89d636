"""XML plumbing: namespaces, a hostile-input-safe parser, element builders, EWS value formats."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from lxml import etree

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
M_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
E_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA_NS = "http://www.w3.org/2005/08/addressing"

NSMAP = {"s": SOAP_NS, "m": M_NS, "t": T_NS}

MAX_REQUEST_BYTES = 10 * 1024 * 1024


class XmlInputError(ValueError):
    """The request body is not acceptable XML (malformed, too large, or carrying a DTD / entities)."""


# No DTD loading, no entity expansion, no network: a DTD or entity in a request is refused outright (checked below),
# the parser settings make sure nothing is resolved even if that check were bypassed.
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_blank_text=True,
)


def parse_request(body: bytes) -> etree._Element:
    """Parse a request body, refusing DTDs, entity declarations and bodies over 10 MB."""
    if len(body) > MAX_REQUEST_BYTES:
        raise XmlInputError("The request is larger than the 10 MB limit.")
    head = body[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in body.lower():
        raise XmlInputError("DTDs and entity declarations are not allowed in requests.")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XmlInputError(f"The request is not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise XmlInputError("DTDs and entity declarations are not allowed in requests.")
    return root


def q(ns: str, tag: str) -> str:
    """Clark notation for a namespaced tag."""
    return f"{{{ns}}}{tag}"


def t(tag: str) -> str:
    return f"{{{T_NS}}}{tag}"


def m(tag: str) -> str:
    return f"{{{M_NS}}}{tag}"


def local(el: etree._Element) -> str:
    """The local name of an element, whatever its prefix."""
    return etree.QName(el).localname


def sub(parent: etree._Element, tag: str, text: Any = None, **attrs: Any) -> etree._Element:
    """Append a child element; ``None`` attribute values are left out, other values stringified."""
    el = etree.SubElement(parent, tag, {k: _attr(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = _attr(text)
    return el


def _attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value)
    return str(value)


def child(el: etree._Element | None, ns: str, tag: str) -> etree._Element | None:
    """The first child with that namespace and local name, or None."""
    if el is None:
        return None
    return el.find(q(ns, tag))


def children(el: etree._Element | None, ns: str, tag: str) -> list[etree._Element]:
    if el is None:
        return []
    return el.findall(q(ns, tag))


def text_of(el: etree._Element | None, ns: str, tag: str, default: str | None = None) -> str | None:
    found = child(el, ns, tag)
    if found is None or found.text is None:
        return default
    return found.text


def parse_bool(value: str | None, default: bool = False) -> bool:
    """xs:boolean: true / false / 1 / 0."""
    if value is None:
        return default
    return value.strip().lower() in ("true", "1")


# The years Exchange stores (MAPI PT_SYSTIME starts in 1601; Exchange refuses dates past 4500).
MIN_YEAR = 1601
MAX_YEAR = 4500


def parse_naive_or_aware(value: str) -> datetime:
    """An xs:dateTime as written: aware when it carries an offset (or ``Z``), naive otherwise; ValueError if invalid."""
    value = value.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


def parse_datetime(value: str) -> datetime:
    """An xs:dateTime as an aware UTC datetime; values without an offset are taken as UTC."""
    parsed = parse_naive_or_aware(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def in_supported_range(value: datetime) -> bool:
    """Whether Exchange can store ``value`` (years 1601 to 4500)."""
    return MIN_YEAR <= value.year <= MAX_YEAR


def format_datetime(value: datetime) -> str:
    """EWS's own form: ``YYYY-MM-DDTHH:MM:SSZ``, UTC, no fractions (exchangelib drops anything else to None).

    The year always has four digits (``strftime("%Y")`` writes year 1 as ``1``, which is not an xs:dateTime).
    """
    value = value.astimezone(UTC)
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}Z"


def format_date(value: date) -> str:
    return value.isoformat()


def to_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")
