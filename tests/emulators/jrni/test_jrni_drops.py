"""Everything JRNI's Liquid drops show (booking answers, company address, staff, service and client details) is in
the JSON, as JRNI returns it, over real HTTP: set at creation, read back, reached by following links."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import (
    ACCOUNT_NO,
    ADVICE_QUESTIONS,
    ALICE,
    APP_ID,
    CONSULTATION,
    NORTH,
    NORTH_ADDRESS,
    OTHER_QUESTION,
    PARENT,
    PRIYA,
    REASON,
    ROOM_1,
    SEED,
    VISITED,
    JrniClient,
    Receiver,
    control,
    expand,
)

BOOKINGS = f"/api/v1/admin/{NORTH}/bookings"
SCRIPT = "<script>alert(1)</script>"


def _book(jrni: JrniClient, **extra: Any) -> dict[str, Any]:
    body = {"datetime": "2026-06-01T09:00:00+01:00", "service_id": CONSULTATION, "person_id": ALICE, **extra}
    return jrni.ok("POST", BOOKINGS, status=201, json=body)  # type: ignore[no-any-return]


def _booking_count(client: JrniClient) -> int:
    return client.ok("GET", BOOKINGS, params={"include_cancelled": "true"})["total_entries"]  # type: ignore[no-any-return]


def _answers(booking: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The three shapes JRNI shows answers in, reduced to what a template would print."""
    return (
        booking["questions"],
        booking["answers_summary"],
        [
            (
                a["question_id"],
                a["question_text"],
                a["name"],
                a["value"],
                a["_embedded"]["question"]["reference"],
            )
            for a in booking["_embedded"]["answers"]
        ],
    )


def test_answers_set_at_creation_come_back_in_all_three_shapes(client: JrniClient) -> None:
    created = _book(client, questions={str(VISITED): "No", str(REASON): "Remortgage, fixed rate ending"})
    expected = (
        {
            str(REASON): {"answer": "Remortgage, fixed rate ending", "name": "Reason for visit"},
            str(VISITED): {"answer": "No", "name": "Have you visited us before?"},
        },
        [
            {"question_id": REASON, "name": "Reason for visit", "answer": "Remortgage, fixed rate ending"},
            {"question_id": VISITED, "name": "Have you visited us before?", "answer": "No"},
        ],
        [
            (
                REASON,
                "Reason for visit",
                "Reason for visit",
                "Remortgage, fixed rate ending",
                "reason_for_visit",
            ),
            (VISITED, "Have you visited us before?", "Have you visited us before?", "No", "visited_before"),
        ],
    )
    listed = client.ok("GET", BOOKINGS)["_embedded"]["bookings"]
    for shown in (created, client.ok("GET", created["_links"]["self"]["href"]), listed[0]):
        assert _answers(shown) == expected
    # each answer has its own id and links to its question
    first = created["_embedded"]["answers"][0]
    assert isinstance(first["id"], int)
    assert client.ok("GET", first["_links"]["question"]["href"])["reference"] == "reason_for_visit"


def test_a_booking_without_answers_shows_empty_shapes(client: JrniClient) -> None:
    booking = _book(client)
    assert _answers(booking) == ({}, [], [])


def test_control_plane_booking_takes_answers_and_keeps_markup_verbatim(
    client: JrniClient, base_url: str
) -> None:
    created = control(
        base_url,
        "POST",
        "bookings",
        status=201,
        json={
            "company_id": NORTH,
            "datetime": "2026-06-01T10:00:00+01:00",
            "service_id": CONSULTATION,
            "resource_id": ROOM_1,
            "client": {"first_name": SCRIPT, "last_name": "O'Brien & <b>Sons</b>", "email": "x@example.test"},
            "questions": {str(REASON): f'{SCRIPT} & "quotes"', str(VISITED): True},
        },
    )
    read = client.ok("GET", created["_links"]["self"]["href"])
    raw = requests.get(created["_links"]["self"]["href"], headers=dict(client.http.headers), timeout=5).text
    assert SCRIPT in raw  # not escaped in the JSON text either (json does not need it)
    for shown in (created, read):
        assert shown["client_name"] == f"{SCRIPT} O'Brien & <b>Sons</b>"
        assert shown["_embedded"]["client"]["first_name"] == SCRIPT
        assert shown["questions"][str(REASON)]["answer"] == f'{SCRIPT} & "quotes"'
        assert shown["questions"][str(VISITED)]["answer"] == "true"  # a boolean answer is kept as text


def test_admin_api_keeps_a_script_client_name_verbatim(client: JrniClient) -> None:
    booking = _book(client, client={"first_name": SCRIPT, "last_name": ""})
    read = client.ok("GET", booking["_links"]["self"]["href"])
    assert (read["client_name"], read["_embedded"]["client"]["name"]) == (SCRIPT, SCRIPT)


def test_answers_change_on_update_and_reach_the_data_webhook(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    booking = _book(client, questions={str(REASON): "Savings", str(VISITED): "Yes"})
    answer_ids = {a["question_id"]: a["id"] for a in booking["_embedded"]["answers"]}
    control(base_url, "POST", "webhooks", status=201, json={"url": receiver.url, "format": "data"})
    updated = client.ok(
        "PUT",
        booking["_links"]["self"]["href"],
        json={"questions": {str(REASON): "Mortgage", str(VISITED): None, str(ACCOUNT_NO): 12345678}},
    )
    assert updated["questions"] == {
        str(REASON): {"answer": "Mortgage", "name": "Reason for visit"},
        str(ACCOUNT_NO): {"answer": "12345678", "name": "Account number"},
    }
    # a changed answer keeps its id; a removed one is gone
    assert {a["question_id"]: a["id"] for a in updated["_embedded"]["answers"]}[REASON] == answer_ids[REASON]
    (sent,) = receiver.exactly(1)
    assert sent.body["triggerName"] == "modify"
    assert sent.body["appointment"]["customBookingFields"] == [
        {"ref": "reason_for_visit", "value": "Mortgage"},
        {"ref": "account_number", "value": "12345678"},
    ]
    # the same answers again change nothing: no webhook, no new updated_at
    again = client.ok("PUT", booking["_links"]["self"]["href"], json={"questions": {str(REASON): "Mortgage"}})
    assert again["updated_at"] == updated["updated_at"]
    receiver.exactly(1)


@pytest.mark.parametrize(
    ("questions", "status", "words"),
    [
        ({"999": "x"}, 404, "question 999 not found"),
        ({str(OTHER_QUESTION): "English"}, 403, f"question {OTHER_QUESTION} belongs to another company"),
        (["reason_for_visit"], 400, "questions must be an object"),
        ({"reason_for_visit": "x"}, 400, "questions key (a question id) must be an integer"),
        ({str(REASON): ["a", "b"]}, 400, "must be a string, number or boolean"),
    ],
)
def test_bad_answers_are_refused_and_nothing_is_stored(
    client: JrniClient, questions: Any, status: int, words: str
) -> None:
    response = client.request(
        "POST",
        BOOKINGS,
        json={
            "datetime": "2026-06-01T09:00:00+01:00",
            "service_id": CONSULTATION,
            "client": {"first_name": "Never", "last_name": "Stored"},
            "questions": questions,
        },
    )
    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert _booking_count(client) == 0


def test_a_bad_answer_on_update_changes_nothing(client: JrniClient) -> None:
    booking = _book(client, questions={str(REASON): "Savings"})
    response = client.request(
        "PUT",
        booking["_links"]["self"]["href"],
        json={"datetime": "2026-06-01T11:00:00+01:00", "questions": {"999": "x"}},
    )
    assert response.status_code == 404
    read = client.ok("GET", booking["_links"]["self"]["href"])
    assert (read["datetime"], read["questions"]) == (booking["datetime"], booking["questions"])


def test_questions_are_listed_with_their_reference(client: JrniClient) -> None:
    booking = _book(client)
    # The booking links to its service's question group; JRNI's public questions list answers with an App-Id.
    listed = requests.get(booking["_links"]["questions"]["href"], headers={"App-Id": APP_ID}, timeout=5)
    assert listed.status_code == 200, listed.text
    questions = {q["id"]: q for q in listed.json()["_embedded"]["questions"]}
    assert set(questions) == {REASON, VISITED}  # the parent's question too; not the one outside the group
    assert (questions[REASON]["reference"], questions[REASON]["detail_type"]) == (
        "reason_for_visit",
        "text_area",
    )
    assert questions[REASON]["company_id"] == PARENT
    assert [o["name"] for o in questions[VISITED]["options"]] == ["Yes", "No"]
    for question in questions.values():
        assert {"id", "name", "reference", "detail_type", "required", "_links"} <= set(question)
        assert client.ok("GET", question["_links"]["self"]["href"])["id"] == question["id"]
    # every question of the company, through the company's link and the admin route
    company = client.ok("GET", f"/api/v1/admin/{NORTH}/company")
    everything = client.ok("GET", expand(company["_links"]["questions"]))["_embedded"]["questions"]
    assert [q["id"] for q in everything] == [REASON, VISITED, ACCOUNT_NO]
    grouped = client.ok("GET", expand(company["_links"]["questions"], detail_group_id=ADVICE_QUESTIONS))
    assert grouped["total_entries"] == 2
    admin = client.ok("GET", f"/api/v1/admin/{NORTH}/questions")["_embedded"]["questions"]
    assert [q["reference"] for q in admin] == ["reason_for_visit", "visited_before", "account_number"]
    # another company's question is not this company's to read
    assert client.get(f"/api/v1/{NORTH}/questions/{OTHER_QUESTION}").status_code == 403
    assert client.get(f"/api/v1/{NORTH}/questions/999").status_code == 404
    assert client.get("/api/v1/999/questions").status_code == 404
    assert requests.get(booking["_links"]["questions"]["href"], timeout=5).status_code == 401  # no App-Id


def test_company_has_its_address_and_details(client: JrniClient) -> None:
    company = client.ok("GET", client.login_body["_links"]["company"]["href"])
    assert company["id"] == NORTH
    address = company["address"]
    for key, value in NORTH_ADDRESS.items():
        assert address[key] == value, key
    assert address["id"] == company["address_id"]
    assert (
        address["map_marker"]
        == "Unit+4,+22+Specimen+Row,+City+Centre,+Leeds,+West+Yorkshire,+ZZ2+2BB,+United+Kingdom"
    )
    assert client.ok("GET", company["_links"]["address"]["href"]) == address
    assert requests.get(company["_links"]["address"]["href"], headers={"App-Id": APP_ID}, timeout=5).ok
    assert {
        key: company[key]
        for key in (
            "description",
            "reference",
            "ref",
            "currency_code",
            "country_code",
            "locale",
            "website",
            "extra",
        )
    } == {
        "description": "Walk-in branch for advice and mortgage appointments.",
        "reference": "BR-0011",
        "ref": "BR-0011",
        "currency_code": "GBP",
        "country_code": "gb",
        "locale": "en",
        "website": "https://north.example.test",
        "extra": {"region": "North"},
    }
    # a booking's address link is its company's address, as in JRNI's sample
    assert _book(client)["_links"]["address"] == company["_links"]["address"]
    assert client.get(f"/api/v1/{NORTH}/addresses/{address['id'] + 1000}").status_code == 404


def test_a_company_without_address_says_so(parent_client: JrniClient) -> None:
    company = parent_client.ok("GET", f"/api/v1/admin/{PARENT}/company")
    assert (company["address"], company["address_id"]) == (None, None)
    assert "address" not in company["_links"]
    assert (company["currency_code"], company["country_code"], company["locale"]) == ("GBP", "gb", "en")
    assert (company["description"], company["extra"]) == (None, {})


def test_booking_links_lead_to_service_person_resource_and_company_details(client: JrniClient) -> None:
    booking = _book(client, resource_id=ROOM_1)
    links = booking["_links"]
    service = client.ok("GET", links["service"]["href"])
    assert (
        service["description"],
        service["price"],
        service["prices"],
        service["extra"],
        service["reference"],
    ) == (
        "A first conversation with an adviser about your plans.",
        2500,
        [2500],
        {"bring": "Photo ID"},
        "SVC-CONSULT",
    )
    assert service["_links"]["questions"]["href"] == links["questions"]["href"]
    person = client.ok("GET", links["person"]["href"])
    assert {
        k: person[k]
        for k in ("description", "phone", "mobile", "reference", "group_id", "group_name", "extra")
    } == {
        "description": "Senior mortgage adviser",
        "phone": "0113 496 0124",
        "mobile": "07700 900123",
        "reference": "STAFF-101",
        "group_id": 61,
        "group_name": "Mortgage advisers",
        "extra": {"languages": "English, Urdu"},
    }
    resource = client.ok("GET", links["resource"]["href"])
    assert {
        k: resource[k] for k in ("description", "phone", "mobile", "reference", "group_name", "extra")
    } == {
        "description": "Ground floor, step-free access, seats 4",
        "phone": "0113 496 0130",
        "mobile": None,
        "reference": "ROOM-1",
        "group_name": "Meeting rooms",
        "extra": {"floor": "Ground", "capacity": 4},
    }
    assert client.ok("GET", links["company"]["href"])["address"]["postcode"] == "ZZ2 2BB"
    # staff and services the seed says nothing about have empty details
    bob = client.ok("GET", f"/api/v1/admin/{NORTH}/people/102")
    assert (bob["description"], bob["phone"], bob["reference"], bob["extra"]) == (None, None, None, {})


def test_a_seeded_client_shows_its_address_in_the_booking(client: JrniClient) -> None:
    booking = _book(client, client_id=PRIYA)
    embedded = client.ok("GET", booking["_links"]["self"]["href"])["_embedded"]["client"]
    assert {
        k: embedded[k]
        for k in ("id", "first_name", "last_name", "address1", "address4", "postcode", "country", "reference")
    } == {
        "id": PRIYA,
        "first_name": "Priya",
        "last_name": "Patel",
        "address1": "Flat 2",
        "address4": "Leeds",
        "postcode": "ZZ6 1AB",
        "country": "United Kingdom",
        "reference": "CUST-0001",
    }
    assert booking["client_name"] == "Priya Patel"
    # a client made with a later booking gets a fresh id, never the seeded one's
    assert (
        _book(client, datetime="2026-06-02T09:00:00+01:00", client={"first_name": "New"})["client_id"]
        != PRIYA
    )


def _reseed(base_url: str, change: dict[str, Any]) -> requests.Response:
    requests.post(f"{base_url}/_emulator/reset", timeout=5).raise_for_status()
    seed = copy.deepcopy(SEED)
    for section, rows in change.items():
        seed[section] = rows
    return requests.post(f"{base_url}/_emulator/seed", json=seed, timeout=5)


def _north(**extra: Any) -> list[dict[str, Any]]:
    companies = copy.deepcopy(SEED["companies"])
    companies[1].update(extra)
    return companies


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"companies": _north(address={"street": "x"})},
            "seed.companies[1].address has unknown key(s): street",
        ),
        ({"companies": _north(address={"lat": 91})}, "address.lat must be a number from -90 to 90"),
        ({"companies": _north(address={"postcode": 12})}, "address.postcode must be a string"),
        ({"companies": _north(extra=["x"])}, "seed.companies[1].extra must be an object"),
        ({"companies": _north(extra={"a": {"b": 1}})}, "extra.a must be a string, number, boolean or null"),
        (
            {"questions": [{"id": 1, "company_id": NORTH, "name": "Q", "reference": "Reason For Visit"}]},
            "reference must be a slug",
        ),
        (
            {
                "questions": [
                    {"id": 1, "company_id": NORTH, "name": "Q", "reference": "q", "detail_type": "x"}
                ]
            },
            "detail_type must be one of",
        ),
        (
            {
                "questions": [
                    {"id": 1, "company_id": NORTH, "name": "Q", "reference": "same"},
                    {"id": 2, "company_id": NORTH, "name": "R", "reference": "same"},
                ]
            },
            "reference 'same' is already question 1's",
        ),
        (
            {"questions": [{"id": 1, "company_id": 999, "name": "Q", "reference": "q"}]},
            "company_id 999 is not a known company",
        ),
        (
            {"clients": [{"id": 1, "company_id": NORTH, "first_name": "A", "last_name": "B", "town": "x"}]},
            "seed.clients[0] has unknown key(s): town",
        ),
        ({"services": [{**SEED["services"][0], "price": -1}]}, "seed.services[0].price must be at least 0"),
    ],
)
def test_bad_seed_details_are_refused_whole(base_url: str, change: dict[str, Any], words: str) -> None:
    response = _reseed(base_url, change)
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]
    assert control(base_url, "GET", "state")["companies"] == []  # nothing of the seed was kept


def test_example_seed_has_addresses_questions_and_a_client_with_an_address(base_url: str) -> None:
    seed = json.loads((Path(__file__).resolve().parents[3] / "emulators/jrni/example-seed.json").read_text())
    control(base_url, "POST", "reset")
    control(base_url, "POST", "seed", status=201, json=seed)
    state = control(base_url, "GET", "state")
    assert all(c["address"] and c["address"]["postcode"] for c in state["companies"])
    client = JrniClient(base_url)
    client.login("branch-admin@example.test", "password-for-tests")
    booking = client.ok(
        "POST",
        "/api/v1/admin/11/bookings",
        status=201,
        json={
            "datetime": "2026-06-01T09:00:00+01:00",
            "service_id": 401,
            "person_id": 101,
            "client_id": seed["clients"][0]["id"],
            "questions": {"1001": "First home"},
        },
    )
    assert booking["_embedded"]["client"]["address1"]
    assert booking["answers_summary"] == [
        {"question_id": 1001, "name": "Reason for visit", "answer": "First home"}
    ]
