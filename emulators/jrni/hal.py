"""JSON shaping: JRNI's HAL representations (``_links``, ``_embedded``) of the model in ``state.py``.

Field lists follow ../shared/reference/jrni-api.md §2.3-2.5 (BBDOC samples, BBNG models, the Liquid drops).
Links always point at ``/api/v1`` because JRNI's v5 answers carry v1 links too (jrni-gaps.md §7).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from .state import (
    ADDRESS_TEXT,
    STATUS_BLOCKED,
    Address,
    Admin,
    Answer,
    Booking,
    Client,
    Company,
    Person,
    Question,
    Resource,
    Schedule,
    Service,
    State,
    local_iso,
    utc_iso,
)

Json = dict[str, Any]


def link(href: str, templated: bool = False) -> Json:
    """A HAL link object."""
    return {"href": href, "templated": True} if templated else {"href": href}


def obfuscated_id(kind: str, ident: int | str) -> str:
    """A stable opaque id like JRNI's ``settings.obfuscated_id`` (not a secret)."""
    return hashlib.sha1(f"{kind}:{ident}".encode()).hexdigest()[:16]


def company_json(state: State, api: str, company: Company) -> Json:
    """A company with its parent/children links and the links a client follows to everything else."""
    admin = f"{api}/admin/{company.id}"
    children = state.children(company.id)
    links: Json = {
        "self": link(f"{admin}/company"),
        "people": link(f"{admin}/people{{?page,per_page,include_disabled}}", True),
        "resources": link(f"{admin}/resources{{?page,per_page}}", True),
        "services": link(f"{admin}/services{{?page,per_page}}", True),
        "schedules": link(f"{admin}/schedules{{?page,per_page}}", True),
        "slots": link(f"{admin}/slots{{?start_date,end_date,person_id,resource_id,page,per_page}}", True),
        "bookings": link(
            f"{admin}/bookings{{?start_date,end_date,include_cancelled,modified_since,person_id,resource_id,"
            "service_id,slot_id,page,per_page}",
            True,
        ),
        "new_booking": link(f"{admin}/bookings"),
        "children": [link(f"{api}/admin/{c.id}/company") for c in children],
    }
    if company.parent_id is not None:
        links["parent"] = link(f"{api}/admin/{company.parent_id}/company")
    if company.address is not None:
        links["address"] = link(address_href(api, company.address))
    links["questions"] = link(f"{api}/{company.id}/questions{{?detail_group_id}}", True)
    return {
        "id": company.id,
        "name": company.name,
        "description": company.description,
        "reference": company.reference,
        "ref": company.reference,
        "timezone": company.timezone,
        "currency_code": company.currency_code,
        "country_code": company.country_code,
        "locale": company.locale,
        "available_locales": [company.locale],
        "website": company.website,
        "live": True,
        "disabled": False,
        "extra": dict(company.extra),
        "address_id": company.address.id if company.address is not None else None,
        "address": address_json(api, company.address) if company.address is not None else None,
        "parent_id": company.parent_id,
        "children_count": len(children),
        "multi_status": ["no_show", "checked_in", "completed"],
        "_embedded": {"children": [_company_brief(api, c) for c in children]},
        "_links": links,
    }


def address_href(api: str, address: Address) -> str:
    """Where an address is read: ``/{company_id}/addresses/{id}`` (BBDOC company.md)."""
    return f"{api}/{address.company_id}/addresses/{address.id}"


def address_json(api: str, address: Address) -> Json:
    """An address as the company JSON embeds it and ``/{c}/addresses/{id}`` answers (BBDOC company.md)."""
    out: Json = {"id": address.id}
    out.update({key: getattr(address, key) for key in ADDRESS_TEXT})
    out.update({"lat": address.lat, "long": address.long})
    lines = [getattr(address, key) for key in ("address1", "address2", "address3", "address4", "address5")]
    lines += [address.postcode, address.country]
    out["map_marker"] = ",+".join(line.replace(" ", "+") for line in lines if line)
    out["homephone"] = address.phone
    out["extra"] = {}
    out["_links"] = {"self": link(address_href(api, address))}
    return out


def question_json(api: str, question: Question) -> Json:
    """A custom question (BBDOC admin-bookings.md ``_embedded.answers[]._embedded.question``) with its slug."""
    out: Json = {
        "id": question.id,
        "name": question.name,
        "reference": question.reference,
        "detail_type": question.detail_type,
        "required": question.required,
        "important": False,
        "admin_only": question.admin_only,
        "applies_to": 0,
        "ask_member": True,
        "help_text": question.help_text,
        "settings": {},
        "price": 0,
        "price_per_booking": False,
        "outcome": False,
        "company_id": question.company_id,
        "detail_group_id": question.detail_group_id,
        "_links": {"self": link(f"{api}/{question.company_id}/questions/{question.id}")},
    }
    if question.options:
        out["options"] = [
            {"id": question.id * 100 + n, "name": name, "price": 0, "is_default": False}
            for n, name in enumerate(question.options, 1)
        ]
    return out


def answer_json(api: str, answer: Answer, question: Question) -> Json:
    """One of a booking's ``_embedded.answers`` (BBDOC admin-bookings.md), plus ``name`` like answers_summary."""
    return {
        "id": answer.id,
        "value": answer.value,
        "price": 0,
        "question_id": question.id,
        "name": question.name,
        "question_text": question.name,
        "admin_only": question.admin_only,
        "important": False,
        "outcome": False,
        "company_id": question.company_id,
        "_embedded": {"question": question_json(api, question)},
        "_links": {
            "self": link(f"{api}/{question.company_id}/answers/{answer.id}"),
            "question": {
                "title": question.name,
                "href": f"{api}/{question.company_id}/questions/{question.id}",
            },
        },
    }


def _company_brief(api: str, company: Company) -> Json:
    return {
        "id": company.id,
        "name": company.name,
        "timezone": company.timezone,
        "parent_id": company.parent_id,
        "_links": {"self": link(f"{api}/admin/{company.id}/company")},
    }


def login_json(state: State, api: str, token: str, admin: Admin, company_id: int) -> Json:
    """The login answer (BBDOC authentication.md)."""
    company = state.companies[company_id]
    administrator: Json = {
        "name": admin.name or admin.email,
        "email": admin.email,
        "role": "owner",
        "company_id": admin.company_id,
        "company_name": state.companies[admin.company_id].name,
        "_links": {
            "self": link(
                f"{api}/admin/{admin.company_id}/administrators/{obfuscated_id('admin', admin.email)}"
            ),
            "company": link(f"{api}/admin/{admin.company_id}/company"),
            "login": link(f"{api}/login/admin/{admin.company_id}"),
        },
    }
    return {
        "email": admin.email,
        "auth_token": token,
        "company_id": company.id,
        "path": api,
        "role": "owner",
        "_embedded": {"administrators": [administrator]},
        "_links": {
            "administrator": administrator["_links"]["self"],
            "company": link(f"{api}/admin/{company.id}/company"),
            "logout": link(f"{api}/login"),
        },
    }


def _staff_common(state: State, api: str, obj: Person | Resource, kind: str) -> Json:
    admin = f"{api}/admin/{obj.company_id}"
    plural = "people" if kind == "person" else "resources"
    return {
        "id": obj.id,
        "name": obj.name,
        "description": obj.description,
        "type": kind,
        "email": obj.email,
        "ews_email": obj.ews_email,
        "mobile": obj.mobile,
        "phone": obj.phone,
        "phone_prefix": None,
        "reference": obj.reference,
        "extra": dict(obj.extra),
        "deleted": obj.deleted,
        "disabled": obj.disabled,
        "company_id": obj.company_id,
        "order": obj.id,
        "schedule_id": obj.schedule_id,
        "service_ids": [s.id for s in state.of_company(state.services, obj.company_id)],
        "never_booked": False,
        "group_id": obj.group_id,
        "group_name": obj.group_name,
        "origin": "emulator seed",
        "created_at": utc_iso(obj.created_at),
        "updated_at": utc_iso(obj.created_at),
        "_links": {
            "self": link(f"{admin}/{plural}/{obj.id}"),
            "items": link(f"{api}/{obj.company_id}/{plural}/{obj.id}/items"),
            "images": link(f"{admin}/{plural}/{obj.id}/images"),
            "edit": link(f"{admin}/{plural}/{obj.id}/edit"),
            "block": link(f"{admin}/{plural}/{obj.id}/block"),
            "schedule": link(
                f"{admin}/schedules/{obj.schedule_id}{{?start_date,end_date}}"
                if obj.schedule_id is not None
                else f"{admin}/schedules",
                obj.schedule_id is not None,
            ),
            "bookings": link(f"{admin}/bookings?{kind}_id={obj.id}"),
        },
    }


def person_json(state: State, api: str, person: Person) -> Json:
    """A person (staff member), BBDOC people.md plus the person drop's ews_email."""
    out = _staff_common(state, api, person, "person")
    admin = f"{api}/admin/{person.company_id}"
    out.update(
        {
            "person_companies": [{"company_id": person.company_id}],
            "ical_link": f"{api}/{person.company_id}/people/{person.id}/ical",
            "queuing_disabled": True,
            "resource_ids": [],
            "company_ids": [person.company_id],
        }
    )
    out["_links"].update(
        {
            "companies": link(f"{admin}/people/{person.id}/companies"),
            "attendance": link(f"{admin}/people/{person.id}/attendance"),
            "cal": link(f"{api}/{person.company_id}/people/{person.id}/ical"),
            "overlay_cal": link(f"{api}/{person.company_id}/people/{person.id}/overlay_ical"),
            "enabled_services": link(f"{admin}/people/{person.id}/enabled_services"),
            "enabled_resources": link(f"{admin}/people/{person.id}/enabled_resources"),
        }
    )
    return out


def resource_json(state: State, api: str, resource: Resource) -> Json:
    """A resource (typically a room), BBDOC resource.md plus the resource drop's ews_email."""
    out = _staff_common(state, api, resource, "resource")
    out.update({"address_id": None, "person_ids": [], "company_ids": [resource.company_id]})
    out["_links"]["address"] = link(f"{api}/admin/{resource.company_id}/addresses")
    return out


def service_json(api: str, service: Service) -> Json:
    """A service."""
    links: Json = {"self": link(f"{api}/admin/{service.company_id}/services/{service.id}")}
    if service.detail_group_id is not None:
        links["questions"] = link(
            f"{api}/{service.company_id}/questions?detail_group_id={service.detail_group_id}"
        )
    return {
        "id": service.id,
        "company_id": service.company_id,
        "name": service.name,
        "description": service.description,
        "reference": service.reference,
        "type": "service",
        "duration": service.duration,
        "durations": [service.duration],
        "price": service.price,
        "prices": [service.price],
        "extra": dict(service.extra),
        "detail_group_id": service.detail_group_id,
        "pre_time": service.pre_time,
        "post_time": service.post_time,
        "booking_type_public": service.booking_type_public,
        "booking_type_member": service.booking_type_member,
        "disabled": False,
        "deleted": False,
        "_links": links,
    }


def schedule_json(api: str, schedule: Schedule, dates: dict[str, Any] | None = None) -> Json:
    """A legacy schedule (BBDOC shift-pattern.md); with ``dates`` when a range was asked for (BBNG)."""
    admin = f"{api}/admin/{schedule.company_id}"
    out: Json = {
        "id": schedule.id,
        "company_id": schedule.company_id,
        "name": schedule.name,
        "desc": None,
        "rules": dict(schedule.rules),
        "schedule_type": 0,
        "style": 0,
        "duration": 60,
        "week_start": 0,
        "uses_shift_patterns": False,
        "day_schedule_id": None,
        "_links": {
            "self": link(f"{admin}/schedules/{schedule.id}"),
            "shifts": link(f"{admin}/schedules/{schedule.id}/shifts{{?start_date,end_date}}", True),
        },
    }
    if dates is not None:
        out["dates"] = dates
    return out


def client_json(api: str, client: Client | None, company: Company) -> Json | None:
    """A booking's client, as embedded in bookings and purchases."""
    if client is None:
        return None
    out: Json = {
        "id": client.id,
        "first_name": client.first_name,
        "last_name": client.last_name,
        "name": client.name,
        "email": client.email,
        "mobile": client.mobile,
        "phone": client.phone,
        "reference": client.reference,
        "time_zone": company.timezone,
        "address1": client.address1,
        "address2": client.address2,
        "address3": client.address3,
        "address4": client.address4,
        "address5": client.address5,
        "postcode": client.postcode,
        "country": client.country,
        "client_type": "Contact",
        "_links": {"self": link(f"{api}/admin/{client.company_id}/client/{client.id}")},
    }
    return out


def booking_describe(state: State, booking: Booking) -> str:
    """``full_describe``: "Service with Person - Resource" for bookings, "Person - Name" for blocks.

    Built when shown, from the current person, resource and service, so it never goes stale.
    """
    service = state.services.get(booking.service_id or 0)
    person = state.people.get(booking.person_id or 0)
    resource = state.resources.get(booking.resource_id or 0)
    if booking.is_block:
        if person:
            return f"Person - {person.name}"
        return f"Resource - {resource.name}" if resource else "Blocked"
    text = service.name if service else "Booking"
    if person:
        text += f" with {person.name}"
    if resource:
        text += f" - {resource.name}"
    return text


def booking_type(booking: Booking) -> str:
    """What the booking is: Reservation (awaiting confirmation), Blocked, or Booking."""
    if booking.is_block:
        return "Blocked"
    return "Reservation" if booking.reservation else "Booking"


def booking_json(state: State, api: str, booking: Booking) -> Json:
    """A booking with every field listed in jrni-api.md §2.3 and the booking drop."""
    company = state.companies[booking.company_id]
    tz = company.tz
    admin = f"{api}/admin/{booking.company_id}"
    service = state.services.get(booking.service_id or 0)
    person = state.people.get(booking.person_id or 0)
    resource = state.resources.get(booking.resource_id or 0)
    client = state.clients.get(booking.client_id or 0)
    base = f"{admin}/bookings/{booking.id}"
    links: Json = {
        "self": link(base),
        "edit": link(f"{base}/edit"),
        "cancel": link(f"{base}/cancel{{?notify,cancel_reason}}", True),
        "comms": link(f"{base}/comms"),
        "check_in": link(f"{base}/multi_status"),
        "questions": link(
            f"{api}/{booking.company_id}/questions"
            + (f"?detail_group_id={service.detail_group_id}" if service and service.detail_group_id else "")
        ),
        "company": link(f"{admin}/company"),
    }
    if company.address is not None:
        links["address"] = link(address_href(api, company.address))  # the company's, as in BBDOC's sample
    if client:
        links["client"] = link(f"{admin}/client/{client.id}")
    if person:
        links["person"] = link(f"{admin}/people/{person.id}")
    if resource:
        links["resource"] = link(f"{admin}/resources/{resource.id}")
    if service:
        links["service"] = link(f"{admin}/services/{service.id}")
    if booking.slot_id is not None and booking.slot_id in state.slots:
        links["slot"] = link(f"{admin}/slots/{booking.slot_id}")
    settings = {"obfuscated_id": obfuscated_id("booking", booking.id), **booking.settings}
    settings.setdefault("who_updated", booking.booked_by_email or booking.booked_by)
    private_notes = [{"id": 1, "note": booking.private_note}] if booking.private_note else []
    answered = [(a, state.questions[a.question_id]) for a in booking.answers]
    return {
        "id": booking.id,
        "full_describe": booking_describe(state, booking),
        "describe": booking_describe(state, booking),
        "resource_name": resource.name if resource else None,
        "person_name": person.name if person else None,
        "service_name": service.name if service else None,
        "resource_id": booking.resource_id,
        "person_id": booking.person_id,
        "people_ids": [booking.person_id] if booking.person_id is not None else [],
        "service_id": booking.service_id,
        "member_id": booking.client_id,
        "client_id": booking.client_id,
        "client_name": client.name if client else None,
        "client_email": client.email if client else None,
        "client_phone": client.phone if client else None,
        "client_mobile": client.mobile if client else None,
        "mobile": client.mobile if client else None,
        "datetime": local_iso(booking.start, tz),
        "end_datetime": local_iso(booking.end, tz),
        "duration": booking.duration,
        "duration_span": int((booking.end - booking.start).total_seconds()),
        "listed_duration": booking.duration,
        "pre_time": booking.pre_time,
        "post_time": booking.post_time,
        "time_zone": company.timezone,
        "on_waitlist": False,
        "company_id": booking.company_id,
        "company_name": company.name,
        "attended": False,
        "booking_updated": booking.updated_at != booking.created_at,
        "updated_at": utc_iso(booking.updated_at),
        "created_at": utc_iso(booking.created_at),
        "price": booking.price,
        "paid": 0,
        "quantity": 1,
        "customer_count": 1,
        "is_cancelled": booking.is_cancelled,
        "cancelled_by": booking.cancelled_by,
        "cancellation_date": utc_iso(booking.cancellation_date),
        "cancel_reason": booking.cancel_reason,
        "multi_status": {booking.current_multi_status: utc_iso(booking.updated_at)}
        if booking.current_multi_status
        else {},
        "current_multi_status": booking.current_multi_status,
        "purchase_id": booking.purchase_id,
        "purchase_ref": obfuscated_id("purchase", booking.purchase_id),
        "event_chain_id": None,
        "slot_id": booking.slot_id,
        "notes": {"public": [], "private": private_notes},
        "private_note": booking.private_note,
        "channel": booking.channel,
        "status": booking.status,
        "booking_type": booking_type(booking),
        "is_reservation": booking.reservation,
        "external": booking.external,
        "external_cal_id": booking.external_cal_id,
        "settings": settings,
        "slot_settings": {},
        "answers_summary": [{"question_id": q.id, "name": q.name, "answer": a.value} for a, q in answered],
        "survey_answers_summary": [],
        "questions": {str(q.id): {"answer": a.value, "name": q.name} for a, q in answered},
        "min_cancellation_time": None,
        "booked_by": booking.booked_by,
        "booked_by_email": booking.booked_by_email,
        "user_id": None,
        "ticket_name": None,
        "_embedded": {
            "client": client_json(api, client, company),
            "answers": [answer_json(api, a, q) for a, q in answered],
        },
        "_links": links,
    }


def slot_json(state: State, api: str, booking: Booking) -> Json:
    """A block as the slot JRNI returns from ``PUT …/block`` (BBDOC people.md)."""
    assert booking.status == STATUS_BLOCKED and booking.slot_id is not None
    tz = state.companies[booking.company_id].tz
    admin = f"{api}/admin/{booking.company_id}"
    links: Json = {
        "self": link(f"{admin}/slots/{booking.slot_id}"),
        "bookings": link(f"{admin}/bookings?slot_id={booking.slot_id}"),
        "booking_details": link(f"{admin}/bookings/{booking.id}"),
        "company": link(f"{admin}/company"),
    }
    if booking.person_id is not None:
        links["person"] = link(f"{admin}/people/{booking.person_id}")
    if booking.resource_id is not None:
        links["resource"] = link(f"{admin}/resources/{booking.resource_id}")
    return {
        "id": booking.slot_id,
        "datetime": local_iso(booking.start, tz),
        "end_datetime": local_iso(booking.end, tz),
        "full_describe": booking_describe(state, booking),
        "status": STATUS_BLOCKED,
        "spaces_booked": 0,
        "spaces_reserved": 0,
        "spaces_blocked": 1,
        "spaces_held": 0,
        "num_spaces": 1,
        "spaces_wait": 0,
        "person_id": booking.person_id,
        "resource_id": booking.resource_id,
        "duration": booking.duration,
        "duration_span": int((booking.end - booking.start).total_seconds()),
        "company_id": booking.company_id,
        "booking_id": booking.id,
        "private_note": booking.private_note,
        "updated_at": utc_iso(booking.updated_at),
        "_links": links,
    }


def page_links(url_base: str, params: dict[str, str], page: int, per_page: int, total: int) -> Json:
    """``self`` / ``next`` / ``previous`` links for a page, keeping the caller's filters."""

    def href(p: int) -> str:
        query = {**params, "page": str(p), "per_page": str(per_page)}
        return f"{url_base}?{urlencode(query)}"

    links: Json = {"self": link(href(page))}
    if page * per_page < total:
        links["next"] = link(href(page + 1))
    if page > 1:
        links["previous"] = link(href(page - 1))
        links["back"] = links["previous"]  # BBDOC calls it "back"; both are sent
    return links
