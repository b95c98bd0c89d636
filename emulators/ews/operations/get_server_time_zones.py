"""GetServerTimeZones: the Windows time zones the server knows, with their periods and transitions on request.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getservertimezones-operation
"""

from __future__ import annotations

from lxml import etree

from emulators.ews import soap, timezones
from emulators.ews.context import RequestContext
from emulators.ews.errors import EwsError
from emulators.ews.operations import operation
from emulators.ews.soap import response
from emulators.ews.xml import M_NS, T_NS, child, children, m, parse_bool, sub, t


@operation("GetServerTimeZones")
def get_server_time_zones(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    full = parse_bool(request.get("ReturnFullTimeZoneData"))
    wanted = [(el.text or "").strip() for el in children(child(request, M_NS, "Ids"), T_NS, "Id")]
    _, messages = response(body, "GetServerTimeZones")
    unknown = [zone_id for zone_id in wanted if not timezones.is_known(zone_id)]
    if unknown:
        # One unknown id fails the whole (single) message, as Exchange does; the schema still wants the container.
        message = soap.error(
            messages,
            "GetServerTimeZones",
            EwsError("ErrorTimeZone", f"The time zone '{unknown[0]}' is not valid."),
        )
        sub(message, m("TimeZoneDefinitions"))
        return
    message = soap.success(messages, "GetServerTimeZones")
    definitions = sub(message, m("TimeZoneDefinitions"))
    # No Ids: every zone the server knows (exchangelib's own Windows zone table).
    for zone_id in wanted or timezones.all_ids():
        if full:
            timezones.write_definition(definitions, t("TimeZoneDefinition"), zone_id)
        else:
            sub(definitions, t("TimeZoneDefinition"), Id=zone_id, Name=zone_id)
