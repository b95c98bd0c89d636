"""JRNI's admin REST API over requests: login as the parent company's administrator, token renewal, HAL paging.

JRNI's errors are translated into the domain's here (and in no other module): a 5xx, a timeout or a refused
connection is ``RetryableError``; bad credentials and refused access are ``PermanentError`` with what to fix; a
clash is ``ConflictError``. Reference: ../shared/reference/jrni-api.md §2.1-2.2.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from calsync import deadline
from calsync.domain import (
    ConflictError,
    DeadlineExceededError,
    ForbiddenError,
    JrniConnection,
    PermanentError,
    RetryableError,
    ThrottledError,
)

log = logging.getLogger(__name__)

Json = dict[str, Any]

_SECRET_FIELDS = ("app_id", "email", "password")  # app_key is optional: newer JRNI tenants need App-Id only
_VERSION_SUFFIX = re.compile(r"/api/v\d+$")
RECENT_FOR = 300.0  # seconds a company, service or staff member read for a booking's subject is used again
_RECENT_MAX = 512
_MAX_PAGES = 10_000  # a server whose "next" never ends must not keep a Lambda busy forever
# The most one answer may hold (decoded): a page of JRNI's is a few hundred kB; more is a broken or hostile server.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# How long one answer, connection to last byte, may take: a server trickling its body a byte at a time must not hold
# a function for minutes (each read alone would stay within the read timeout). Cut further by an overall deadline.
ANSWER_SECONDS_PER_TIMEOUT = 3
_CONNECT_SECONDS = 3.05
_READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """JRNI's answer to one request, read whole within its time and size."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)


class JrniLoginError(PermanentError):
    """JRNI refused the administrator's login; ``status`` says how (401 credentials, 403 company, 404 no company)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class JrniClient:
    """One JRNI tenant's admin API, logged in as the administrator of the integration's parent company."""

    def __init__(
        self,
        connection: JrniConnection,
        secret: Mapping[str, str],
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        missing = [name for name in _SECRET_FIELDS if not secret.get(name)]
        if missing:
            raise PermanentError(
                f"JRNI secret {connection.secret_name!r} lacks {', '.join(missing)}: "
                'it must hold {"app_id", "app_key", "email", "password"}'
            )
        self.connection = connection
        self.timeout = timeout
        # The operator may give the host alone or the API root; links are always followed as JRNI sends them.
        self.base_url = _VERSION_SUFFIX.sub("", connection.base_url.rstrip("/"))
        self._origin = _origin(self.base_url)
        self._email = secret["email"]
        self._password = secret["password"]
        self._token: str | None = None
        self._recent: dict[str, tuple[float, Json | None]] = {}
        self._recent_lock = threading.Lock()
        self._http = session or requests.Session()
        self._http.headers.update({"App-Id": secret["app_id"], "Accept": "application/json"})
        if secret.get("app_key"):
            self._http.headers["App-Key"] = secret["app_key"]

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # ------------------------------------------------------------------------------------------------ calls

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Json:
        """GET an admin resource (a path under the base URL, or a link JRNI gave); 404 is a PermanentError."""
        found = self.request("GET", path, params=params)
        assert found is not None
        return found

    def find(self, path: str, params: Mapping[str, str | int] | None = None) -> Json | None:
        """GET a resource that may legitimately be missing: None on 404."""
        return self.request("GET", path, params=params, missing_ok=True)

    def find_recent(self, path: str) -> Json | None:
        """``find``, answered from what was read in the last ``RECENT_FOR`` seconds when it was: for what changes
        seldom and is shown beside every booking (a company, a service, a staff member)."""
        now = time.monotonic()
        with self._recent_lock:
            kept = self._recent.get(path)
            if kept is not None and now - kept[0] < RECENT_FOR:
                return kept[1]
        found = self.find(path)
        with self._recent_lock:
            if len(self._recent) >= _RECENT_MAX:
                self._recent.clear()
            self._recent[path] = (now, found)
        return found

    def get_all(self, path: str, key: str, params: Mapping[str, str | int] | None = None) -> Iterator[Json]:
        """Every ``_embedded[key]`` row of a collection, following ``_links.next`` page after page."""
        url: str | None = path
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            page = self.get(url, params)
            params = None  # the next link carries the filters already
            rows = page.get("_embedded", {}).get(key, [])
            if not isinstance(rows, list):
                raise PermanentError(f"JRNI answered {path} without a list of {key}")
            yield from (row for row in rows if isinstance(row, dict))
            url = _href(page, "next")
            if url is not None:
                if url in seen or not rows:
                    return  # a loop or an empty page past the end: nothing more to read
                seen.add(url)
        raise PermanentError(f"JRNI kept sending pages of {path} after {_MAX_PAGES}")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Json | None = None,
        missing_ok: bool = False,
    ) -> Json | None:
        """One admin call: logs in when needed, and once more when the token has expired (JRNI answers 401)."""
        url = self._url(path)
        if self._token is None:
            self.login()
        response = self._send(method, url, params, json)
        if response.status_code == 401:
            # JRNI tokens expire 24 h after their last use (jrni-api.md §2.2): log in again and retry once.
            log.info("JRNI token refused on %s %s; logging in again", method, urlsplit(url).path)
            self.login()
            response = self._send(method, url, params, json)
            if response.status_code == 401:
                raise PermanentError(
                    f"JRNI refused a fresh token for {method} {urlsplit(url).path}: check that the administrator "
                    f"in secret {self.connection.secret_name!r} still exists and may use the API"
                )
        if response.status_code == 404 and missing_ok:
            return None
        _raise_for_status(response, method, url)
        return _json(response, method, url)

    def login(self) -> None:
        """Log in as the administrator of the parent company; its token reaches every child company too."""
        company_id = self.connection.company_id
        url = f"{self.base_url}/api/v1/login/admin/{company_id}"
        self._token = None
        self._http.headers.pop("Auth-Token", None)
        response = self._send("POST", url, None, {"email": self._email, "password": self._password})
        if response.status_code == 401:
            raise JrniLoginError(
                f"JRNI refused the administrator login for company {company_id}: check app_id, app_key, email "
                f"and password in secret {self.connection.secret_name!r}",
                status=401,
            )
        if response.status_code == 403:
            raise JrniLoginError(
                f"the administrator in secret {self.connection.secret_name!r} does not administer JRNI company "
                f"{company_id}: use an administrator of the parent company, or correct the company id",
                status=403,
            )
        if response.status_code == 404:
            raise JrniLoginError(
                f"JRNI knows no company {company_id}: correct the integration's company id", status=404
            )
        _raise_for_status(response, "POST", url)
        token = _json(response, "POST", url).get("auth_token")
        if not isinstance(token, str) or not token:
            raise PermanentError(f"JRNI's login answer for company {company_id} carried no auth_token")
        self._token = token
        self._http.headers["Auth-Token"] = token
        log.info("logged in to JRNI company %s", company_id)

    # ------------------------------------------------------------------------------------------------ plumbing

    def _url(self, path: str) -> str:
        url = urljoin(self.base_url + "/", path.lstrip("/")) if not path.startswith("http") else path
        # Auth-Token goes wherever we send requests: never follow a link off the configured JRNI host.
        if _origin(url) != self._origin:
            raise PermanentError(f"JRNI sent a link to another host ({_origin(url)}); refusing to follow it")
        return url

    def _send(
        self, method: str, url: str, params: Mapping[str, str | int] | None, body: Json | None
    ) -> Answer:
        """One request and its whole answer, within the client's timeouts and the current overall deadline (an
        admin request's); RetryableError when time runs out, PermanentError when the answer is too large."""
        where = f"{method} {urlsplit(url).path}"
        what = f"JRNI's answer to {where}"
        ends_at = time.monotonic() + ANSWER_SECONDS_PER_TIMEOUT * self.timeout
        overall = deadline.current()
        if overall is not None:
            overall.left_for(what)  # none left: nothing is sent
            ends_at = min(ends_at, overall.at)
        left = max(ends_at - time.monotonic(), 0.001)
        try:
            response = self._http.request(
                method,
                url,
                params=params,
                json=body,
                timeout=(min(_CONNECT_SECONDS, left), min(self.timeout, left)),
                stream=True,
            )
        except requests.Timeout as exc:
            raise self._late(where, ends_at) from exc
        except requests.ConnectionError as exc:
            raise RetryableError(f"JRNI could not be reached for {where}: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise PermanentError(f"JRNI request {where} could not be made: {type(exc).__name__}") from exc
        try:
            content = self._read(response, where, ends_at)
        finally:
            response.close()
        log.debug("JRNI %s -> %s", where, response.status_code)
        return Answer(int(response.status_code), response.headers, content)

    def _read(self, response: requests.Response, where: str, ends_at: float) -> bytes:
        """The answer's body, read as it arrives until ``ends_at`` and at most MAX_ANSWER_BYTES."""
        parts: list[bytes] = []
        size = 0
        raw = response.raw
        while True:
            left = ends_at - time.monotonic()
            if left <= 0:
                raise self._late(where, ends_at)
            # No single read may outlast the answer's time (the socket's own timeout was set for a whole read).
            sock = getattr(raw.connection, "sock", None)
            if sock is not None:
                sock.settimeout(min(self.timeout, left))
            try:
                chunk = raw.read1(_READ_BYTES, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
                raise self._late(where, ends_at) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise RetryableError(f"JRNI's answer to {where} was cut off: {type(exc).__name__}") from exc
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise PermanentError(
                    f"JRNI's answer to {where} is larger than {MAX_ANSWER_BYTES // (1024 * 1024)} MB: check the "
                    f"integration's base_url points at JRNI's API"
                )
            parts.append(chunk)

    def _late(self, where: str, ends_at: float) -> RetryableError:
        """The error for an answer that did not come in time: the overall deadline's, or this request's own."""
        current = deadline.current()
        if current is not None and current.at <= ends_at:
            return DeadlineExceededError(
                f"JRNI did not answer {where} within the {current.seconds:g} s this request may take: try again "
                f"shortly; if it persists, check that JRNI at {self.base_url} is up and answers quickly"
            )
        return RetryableError(f"JRNI did not answer {where} within {self.timeout:g} s")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _href(document: Json, name: str) -> str | None:
    link = document.get("_links", {}).get(name)
    href = link.get("href") if isinstance(link, dict) else None
    return href if isinstance(href, str) and href else None


def _message(response: Answer) -> str:
    """JRNI's own words about an error (``message``, else ``error``), shortened for logs and statuses."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    text = body.get("message") or body.get("error") or ""
    return str(text)[:300]


def _raise_for_status(response: Answer, method: str, url: str) -> None:
    status = int(response.status_code)
    if status < 400:
        return
    where = f"{method} {urlsplit(url).path}"
    said = _message(response)
    detail = f"JRNI answered {status} to {where}" + (f": {said}" if said else "")
    if status == 429:
        raise ThrottledError(detail, delay_seconds=_retry_after(response))
    if status >= 500:
        raise RetryableError(detail, delay_seconds=_retry_after(response))
    if status == 409:
        raise ConflictError(detail)
    if status == 403:
        raise ForbiddenError(
            f"{detail} (the integration's administrator may not do this: is the object in the parent company's "
            "tree, and not cancelled or made externally?)"
        )
    if status == 401:
        raise PermanentError(f"{detail} (check app_id and app_key in the integration's JRNI secret)")
    raise PermanentError(detail)


def _retry_after(response: Answer) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _json(response: Answer, method: str, url: str) -> Json:
    try:
        body = response.json()
    except ValueError as exc:
        # A proxy's error page or a cut-off answer: worth another try.
        raise RetryableError(
            f"JRNI answered {method} {urlsplit(url).path} with a body that is not JSON"
        ) from exc
    if not isinstance(body, dict):
        raise PermanentError(f"JRNI answered {method} {urlsplit(url).path} with JSON that is not an object")
    return cast(Json, body)
