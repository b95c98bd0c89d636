"""ResolveNames: find accounts by address or display name.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolvenames-operation
"""

from __future__ import annotations

from lxml import etree

from emulators.ews.context import RequestContext
from emulators.ews.errors import EwsError
from emulators.ews.operations import operation
from emulators.ews.soap import error, response
from emulators.ews.xml import M_NS, m, sub, t, text_of


@operation("ResolveNames")
def resolve_names(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    entry = (text_of(request, M_NS, "UnresolvedEntry", "") or "").strip().lower()
    if entry.startswith("smtp:"):
        entry = entry[5:]
    _, messages = response(body, "ResolveNames")
    found = [
        account
        for account in ctx.store.accounts.values()
        if entry
        and (
            account.address == entry
            or account.display_name.lower().startswith(entry)
            or account.address.startswith(entry)
        )
    ]
    if not found:
        error(messages, "ResolveNames", EwsError("ErrorNameResolutionNoResults", "No results were found."))
        return
    if len(found) > 1:
        message = sub(messages, m("ResolveNamesResponseMessage"), ResponseClass="Warning")
        sub(message, m("MessageText"), "Multiple results were found.")
        sub(message, m("ResponseCode"), "ErrorNameResolutionMultipleResults")
        sub(message, m("DescriptiveLinkKey"), 0)
    else:
        message = sub(messages, m("ResolveNamesResponseMessage"), ResponseClass="Success")
        sub(message, m("ResponseCode"), "NoError")
    resolution_set = sub(
        message, m("ResolutionSet"), TotalItemsInView=len(found), IncludesLastItemInRange=True
    )
    for account in found:
        resolution = sub(resolution_set, t("Resolution"))
        mailbox = sub(resolution, t("Mailbox"))
        sub(mailbox, t("Name"), account.display_name)
        sub(mailbox, t("EmailAddress"), account.address)
        sub(mailbox, t("RoutingType"), "SMTP")
        sub(mailbox, t("MailboxType"), "Mailbox")
