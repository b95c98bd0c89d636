"""The domain's errors. Adapters translate vendor errors into these; nothing above them sees a vendor error."""

from __future__ import annotations


class CalsyncError(Exception):
    """Base of every error calsync raises on purpose."""


class RetryableError(CalsyncError):
    """Worth trying again later (throttling, a timeout, a 5xx). ``delay_seconds`` is the least wait asked for."""

    def __init__(self, message: str, *, delay_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class ThrottledError(RetryableError):
    """The other side asked us to slow down (EWS ErrorServerBusy, JRNI 429): ``delay_seconds`` is its back-off."""


class UnknownOutcomeError(RetryableError):
    """A request was sent but its answer never came (a read timeout, a connection dropped mid-request): it may have
    been carried out, and may even be carried out later. Look before writing again."""


class DeadlineExceededError(RetryableError):
    """The time a piece of work may take (an admin request's, under API Gateway's 29 s) ran out while an upstream was
    still answering: nothing more was waited for. Worth trying again; the message names the upstream."""


class PermanentError(CalsyncError):
    """Will fail the same way every time until someone changes something (bad credentials, unknown mailbox)."""


class ForbiddenError(PermanentError):
    """The other side refused what is not ours to do or see there (JRNI 403: an object of another company)."""


class OccurrenceDeletedError(PermanentError):
    """An occurrence of a recurring series was deleted, and Exchange cannot bring a deleted occurrence back: remove
    the series and create it again (with the changes still wanted)."""


class SeriesGoneError(PermanentError):
    """The recurring series named is no longer in the mailbox (deleted in Outlook, or by an earlier removal)."""


class HeldBackError(CalsyncError):
    """calsync would remove too much at once to trust (a mass delete): nothing was applied, and nothing will be until
    an operator forces it. The message says what was seen and what to do."""


class ConflictError(CalsyncError):
    """The other side refused because of a clash (JRNI 409, EWS irresolvable conflict)."""


class StaleStateError(RetryableError):
    """Our recorded state changed underneath us (a conditional write lost): re-read and plan again."""


class ResyncRequiredError(CalsyncError):
    """A change feed's stored cursor is no longer valid (expired, or from another mailbox): read from the start."""


class RequestError(CalsyncError):
    """Bad input from a caller: refused, and nothing is applied (each trigger answers it in its own terms)."""


class InvalidInputError(RequestError):
    """Malformed, or not in a format we accept."""


class AuthenticationError(RequestError):
    """The caller did not prove who it is."""


class NotFoundError(RequestError):
    """What the caller names does not exist (or is not theirs to see)."""


class TooLargeError(RequestError):
    """More than calsync accepts in one request."""


class InvalidRowsError(RequestError):
    """Rows of a file (mappings to import) that cannot be applied, each with its line and why: nothing of the file
    was applied."""

    def __init__(self, message: str, rows: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.rows = rows


class PreconditionFailedError(RequestError):
    """The caller changed something from a version that is no longer the current one (another change came first):
    refused, so that nobody's change is lost; read it again and apply the change to what it holds now."""


class TemplateError(PermanentError):
    """An integration's subject or body template cannot be used: what is wrong and where (``line:col`` and a caret).

    Refused when the template is saved; met at sync time (a template saved before a check existed), the booking
    fails for good with this reason on its calendars' status, rather than being retried."""

    def __init__(self, which: str, detail: str) -> None:
        super().__init__(f"{which} template: {detail}")
        self.which = which
        self.detail = detail
