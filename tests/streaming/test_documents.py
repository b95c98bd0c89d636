"""How the streaming task cuts EWS's GetStreamingEvents response into SOAP documents: each as soon as its end
arrived, however the bytes are split across reads, and never more than a bounded buffer."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from exchangelib import errors as ews

from calsync.adapters.ews.streaming import soap_documents

ONE = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:GetStreamingEventsResponse>'
    b"<m:ConnectionStatus>OK</m:ConnectionStatus></m:GetStreamingEventsResponse></s:Body></s:Envelope>"
)
TWO = ONE.replace(b"OK", b"Closed")
DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>\n"


def reads(*parts: bytes) -> tuple[list[bytes], list[int]]:
    """``soap_documents`` over ``parts``; with, for each document, how many reads had been made when it came out."""
    pending = list(parts)
    made = [0]

    def read() -> bytes:
        made[0] += 1
        return pending.pop(0) if pending else b""

    documents, after = [], []
    for document in soap_documents(read):
        documents.append(document)
        after.append(made[0])
    return documents, after


def split(data: bytes, size: int) -> Iterable[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 7, 13, 64, 4096])
def test_documents_come_out_whole_however_the_bytes_are_split(size: int) -> None:
    stream = b"\r\n" + ONE + b"  " + TWO + b"\r\n"
    documents, _ = reads(*split(stream, size))
    assert documents == [DECLARATION + ONE, DECLARATION + TWO]


def test_each_document_comes_out_with_the_read_that_completes_it() -> None:
    documents, after = reads(ONE[:50], ONE[50:], TWO)
    assert documents == [DECLARATION + ONE, DECLARATION + TWO]
    assert after == [2, 3]  # not held back until the connection ends


def test_a_default_namespace_envelope_and_junk_between_documents() -> None:
    plain = ONE.replace(b"s:Envelope", b"Envelope")
    documents, _ = reads(b"garbage <notanenvelope> ", plain, b"<Envelopes>", ONE)
    assert documents == [DECLARATION + plain, DECLARATION + ONE]


def test_a_document_that_never_ends_is_refused_at_the_limit() -> None:
    def endless() -> bytes:
        return b"<x>" * 1000

    documents = soap_documents(iter([ONE[:60], b""]).__next__, limit=10_000)
    assert list(documents) == []  # the stream ended inside a document: nothing half-parsed comes out
    chunks = iter([ONE[:60]])
    with pytest.raises(ews.TransportError, match="exceeds 10000 bytes"):
        list(soap_documents(lambda: next(chunks, None) or endless(), limit=10_000))
