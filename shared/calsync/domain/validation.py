"""What calsync accepts from an operator, checked once at the edge (the admin API, the CLI, an import): ids within
JRNI's and DynamoDB's limits, mailboxes that are real addresses, endpoints that are real remote servers, and the
secret names an integration owns. Each check returns the normalised value or raises ``InvalidInputError`` saying
what is wrong and what is accepted. Standard library only.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from calsync.domain.errors import InvalidInputError

# JRNI's ids are numbers; calsync allows letters, digits, '-' and '_' (a test organisation's ids) up to 64, far
# below DynamoDB's key limits, so a key built from them is always valid.
_JRNI_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INTEGRATION_ID = _JRNI_ID

# An SMTP address as Exchange stores it: a dot-atom local part (RFC 5322, no quoted strings), a domain of labels.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
MAX_MAILBOX = 254  # RFC 5321's limit on a forward path, less its angle brackets

SECRET_PARTS = ("jrni", "exchange", "webhook")


def jrni_id(text: str) -> str:
    """A JRNI staff member's or resource's id."""
    if not _JRNI_ID.match(text):
        raise InvalidInputError(
            f"{_shown(text)} is not a JRNI id: 1 to 64 letters, digits, '-' or '_' (JRNI's ids are numbers)"
        )
    return text


def integration_id(text: str) -> str:
    """An integration's id (also the middle of its secrets' names and of its webhook's path)."""
    if not _INTEGRATION_ID.match(text):
        raise InvalidInputError(
            f"{_shown(text)} is not an integration id: 1 to 64 letters, digits, '-' or '_'"
        )
    return text


def run_id(text: str) -> str:
    """A reconcile run's id (calsync makes them: 32 hexadecimal digits)."""
    if not _INTEGRATION_ID.match(text):
        raise InvalidInputError(
            f"{_shown(text)} is not a reconcile run id: 1 to 64 letters, digits, '-' or '_'"
        )
    return text


# An SQS message id: a UUID (the id of a dead letter, as the admin API lists it).
_MESSAGE_ID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
MAX_PAGE = 500


def dead_letter_id(text: str) -> str:
    """A dead letter's id, as ``GET .../dead-letters`` lists it (its SQS message id)."""
    if not _MESSAGE_ID.match(text):
        raise InvalidInputError(
            f"{_shown(text)} is not a dead letter's id: a UUID as GET /admin/integrations/{{id}}/dead-letters lists it"
        )
    return text.lower()


def page_limit(text: str | None, *, default: int = 100) -> int:
    """How many rows one page of a listing holds: a whole number from 1 to 500 (``default`` when not given)."""
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise InvalidInputError(
            f"limit {_shown(text)} is not a page size: give 1 to {MAX_PAGE} (default {default})"
        )
    return int(text)


def mailbox_address(text: str) -> str:
    """A mailbox's SMTP address, lower-cased: ``local@domain.tld``, at most 254 characters, no spaces, control
    characters, quotes or markup (an address that cannot be a mailbox is refused here, never sent to Exchange)."""
    address = text.strip().lower()
    if not address or len(address) > MAX_MAILBOX:
        raise InvalidInputError(f"{_shown(text)} is not a mailbox address: 1 to {MAX_MAILBOX} characters")
    local, at, domain = address.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or not _LOCAL.match(local)
        or len(local) > 64
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
    ):
        raise InvalidInputError(
            f"{_shown(text)} is not a mailbox address: expected name@domain.example (letters, digits and "
            f"!#$%*+-/=?^_`{{|}}~. before the @, a domain name after it; no spaces, quotes, markup or control "
            f"characters)"
        )
    return address


def endpoint_url(url: str, *, what: str, test_endpoint: bool = False) -> str:
    """A JRNI or Exchange URL calsync may call: ``https`` with a host name or a routable address. Plain ``http``,
    and loopback, link-local or unspecified addresses (this machine, the cloud's metadata service), only for an
    integration marked as a test one. Returned without a trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInputError(f"the {what} {_shown(url)} is not a URL: expected https://host/...")
    if parts.username or parts.password:
        raise InvalidInputError(
            f"the {what} {_shown(url)} carries credentials: put them in the integration's secret instead"
        )
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url.strip()):
        raise InvalidInputError(f"the {what} {_shown(url)} contains spaces or control characters")
    if test_endpoint:
        return url.strip().rstrip("/")
    if parts.scheme != "https":
        raise InvalidInputError(
            f"the {what} {_shown(url)} is plain http: calsync sends credentials to it, so it must be https "
            f"(plain http only for an integration with test_endpoints: true)"
        )
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost") or _local_address(host):
        raise InvalidInputError(
            f"the {what} {_shown(url)} points at this machine or the cloud's internal addresses: give the "
            f"server's name (loopback only for an integration with test_endpoints: true)"
        )
    return url.strip().rstrip("/")


def _local_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast


def secret_name(integration: str, part: str, given: str | None, prefix: str = "") -> str:
    """The name of an integration's ``part`` secret (jrni, exchange, webhook): always ``{prefix}{integration}/{part}``
    (``prefix``: the stack's, e.g. ``calsync/``), so that no integration can be pointed at another's credentials; a
    name given must be exactly that one, with or without the prefix."""
    own = f"{prefix}{integration}/{part}"
    if given is not None and given not in (own, f"{integration}/{part}"):
        raise InvalidInputError(
            f"the {part} secret of integration {integration!r} must be named {own!r}, not {_shown(given)}: an "
            f"integration reads only its own secrets"
        )
    return own


def _shown(text: str) -> str:
    """A value quoted for an error message: escaped, and cut short."""
    return repr(text if len(text) <= 80 else text[:77] + "...")
