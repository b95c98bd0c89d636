"""SOAP envelopes, response messages and faults, shaped as Exchange sends them."""

from __future__ import annotations

from lxml import etree

from emulators.ews.errors import EwsError, SoapFault
from emulators.ews.settings import EmulatorSettings
from emulators.ews.xml import E_NS, M_NS, NSMAP, SOAP_NS, T_NS, m, q, sub, t


def envelope(settings: EmulatorSettings) -> tuple[etree._Element, etree._Element]:
    """A response envelope with the ServerVersionInfo header; returns (envelope, body)."""
    root = etree.Element(q(SOAP_NS, "Envelope"), nsmap={"s": SOAP_NS})
    header = sub(root, q(SOAP_NS, "Header"))
    major, minor, major_build, minor_build = settings.build
    etree.SubElement(
        header,
        t("ServerVersionInfo"),
        {
            "MajorVersion": str(major),
            "MinorVersion": str(minor),
            "MajorBuildNumber": str(major_build),
            "MinorBuildNumber": str(minor_build),
            "Version": settings.server_version_name,
        },
        nsmap={"h": T_NS},
    )
    body = sub(root, q(SOAP_NS, "Body"))
    return root, body


def response(body: etree._Element, operation: str) -> tuple[etree._Element, etree._Element]:
    """``<m:{Op}Response><m:ResponseMessages>``; returns (response element, messages container)."""
    resp = etree.SubElement(body, m(f"{operation}Response"), nsmap={"m": M_NS, "t": T_NS})
    return resp, sub(resp, m("ResponseMessages"))


def success(messages: etree._Element, operation: str) -> etree._Element:
    message = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Success")
    sub(message, m("ResponseCode"), "NoError")
    return message


def error(messages: etree._Element, operation: str, err: EwsError) -> etree._Element:
    """An error ResponseMessage: MessageText, ResponseCode, DescriptiveLinkKey and MessageXml when there is one."""
    message = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Error")
    fill_error(message, err)
    if operation in _ITEMS_REQUIRED:
        # The schema requires Items even in an error message; Exchange sends it empty.
        sub(message, m("Items"))
    return message


_ITEMS_REQUIRED = {"CreateItem", "GetItem", "UpdateItem"}


def fill_error(message: etree._Element, err: EwsError) -> None:
    sub(message, m("MessageText"), err.message)
    sub(message, m("ResponseCode"), err.code)
    sub(message, m("DescriptiveLinkKey"), 0)
    if err.message_xml:
        xml = sub(message, m("MessageXml"))
        for name, value in err.message_xml.items():
            sub(xml, t("Value"), value, Name=name)


def fault(settings: EmulatorSettings, err: SoapFault) -> bytes:
    """A SOAP Fault whose detail carries the EWS code, as exchangelib and the EWS Managed API parse it."""
    root = etree.Element(q(SOAP_NS, "Envelope"), nsmap={"s": SOAP_NS})
    body = sub(root, q(SOAP_NS, "Body"))
    soap_fault = sub(body, q(SOAP_NS, "Fault"))
    code = etree.SubElement(soap_fault, "faultcode", nsmap={"a": T_NS})
    code.text = f"a:{err.code}" if err.faultcode == "a:" else err.faultcode
    string = sub(soap_fault, "faultstring", err.message)
    string.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    detail = sub(soap_fault, "detail")
    etree.SubElement(detail, q(E_NS, "ResponseCode"), nsmap={"e": E_NS}).text = err.code
    etree.SubElement(detail, q(E_NS, "Message"), nsmap={"e": E_NS}).text = err.message
    for name, value in err.extra_detail.items():
        etree.SubElement(detail, q(E_NS, name), nsmap={"e": E_NS}).text = value
    if err.message_xml:
        xml = etree.SubElement(detail, t("MessageXml"), nsmap={"t": T_NS})
        for name, value in err.message_xml.items():
            sub(xml, t("Value"), value, Name=name)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


__all__ = ["NSMAP", "envelope", "error", "fault", "fill_error", "response", "success"]
