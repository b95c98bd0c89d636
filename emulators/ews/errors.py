"""EWS error values: per-item response-message errors and whole-request SOAP faults."""

from __future__ import annotations


class EwsError(Exception):
    """An error reported in a ResponseMessage (``ResponseClass="Error"``), as Exchange does per item."""

    def __init__(self, code: str, message: str, *, message_xml: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.message_xml = message_xml or {}


class SoapFault(Exception):
    """An error that fails the whole request: HTTP 500 with a SOAP Fault carrying the EWS response code."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        message_xml: dict[str, str] | None = None,
        faultcode: str = "a:",
        status: int = 500,
        extra_detail: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.message_xml = message_xml or {}
        self.faultcode = faultcode
        self.status = status
        self.extra_detail = extra_detail or {}


def server_busy(back_off_ms: int) -> SoapFault:
    """The throttling fault: Exchange puts the back-off in MessageXml, and clients must honour it."""
    return SoapFault(
        "ErrorServerBusy",
        "The server cannot service this request right now. Try again later.",
        message_xml={"BackOffMilliseconds": str(back_off_ms)},
    )


ITEM_NOT_FOUND = (
    "The specified object was not found in the store., The process failed to get the correct properties."
)
