"""Login, Auth-Token scope and expiry, App-Id."""

from __future__ import annotations

import requests

from .conftest import (
    APP_ID,
    BRANCH_ADMIN,
    NORTH,
    OTHER,
    PARENT,
    PARENT_ADMIN,
    SOUTH,
    JrniClient,
    control,
)

UNAUTHORIZED = {"error": "401 Unauthorized"}


def test_login_returns_a_token_and_links_to_follow(base_url: str) -> None:
    client = JrniClient(base_url)
    body = client.login(*BRANCH_ADMIN)
    assert body["email"] == BRANCH_ADMIN[0]
    assert body["company_id"] == NORTH
    assert body["auth_token"]
    assert body["_embedded"]["administrators"][0]["email"] == BRANCH_ADMIN[0]
    assert "administrator" in body["_links"]
    # Following the company link with the new token works.
    company = client.ok("GET", body["_links"]["company"]["href"])
    assert company["id"] == NORTH
    assert company["timezone"] == "Europe/London"


def test_login_admin_path_form_and_v5(base_url: str) -> None:
    for path in (f"/api/v1/login/admin/{SOUTH}", f"/api/v5/login/admin/{SOUTH}"):
        response = requests.post(
            base_url + path,
            json={"email": PARENT_ADMIN[0], "password": PARENT_ADMIN[1]},
            headers={"App-Id": APP_ID},
            timeout=5,
        )
        assert response.status_code == 201, response.text
        assert response.json()["company_id"] == SOUTH
        # v5 answers still link to v1, as JRNI's do
        assert "/api/v1/" in response.json()["_links"]["company"]["href"]


def test_wrong_password_is_401(base_url: str) -> None:
    response = requests.post(
        f"{base_url}/api/v1/login",
        json={"email": BRANCH_ADMIN[0], "password": "not-the-password"},
        headers={"App-Id": APP_ID},
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_token_expires_after_idle_time_then_login_again(client: JrniClient, base_url: str) -> None:
    people = f"/api/v1/admin/{NORTH}/people"
    assert client.get(people).status_code == 200
    # 23 h idle: still valid, and using it restarts the idle time ("24 h from last use")
    control(base_url, "POST", "clock", json={"advance_seconds": 23 * 3600})
    assert client.get(people).status_code == 200
    control(base_url, "POST", "clock", json={"advance_seconds": 23 * 3600})
    assert client.get(people).status_code == 200
    # 24 h and a bit idle: 401 with JRNI's exact body
    control(base_url, "POST", "clock", json={"advance_seconds": 24 * 3600 + 1})
    response = client.get(people)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    # log in again and carry on
    client.login(*BRANCH_ADMIN)
    assert client.get(people).status_code == 200


def test_token_expiry_fault_expires_every_token_now(
    client: JrniClient, parent_client: JrniClient, base_url: str
) -> None:
    answer = control(base_url, "POST", "faults", status=201, json={"kind": "token_expiry"})
    assert answer["expired_tokens"] == 2
    assert client.get(f"/api/v1/admin/{NORTH}/people").status_code == 401
    assert parent_client.get(f"/api/v1/admin/{PARENT}/people").status_code == 401
    client.login(*BRANCH_ADMIN)
    assert client.get(f"/api/v1/admin/{NORTH}/people").status_code == 200


def test_logout_ends_the_token(client: JrniClient) -> None:
    assert client.request("DELETE", "/api/v1/login").status_code == 200
    assert client.get(f"/api/v1/admin/{NORTH}/people").status_code == 401


def test_parent_token_works_for_children_but_not_the_other_way(
    parent_client: JrniClient, client: JrniClient
) -> None:
    for company in (PARENT, NORTH, SOUTH):
        assert parent_client.get(f"/api/v1/admin/{company}/company").status_code == 200
    # the branch administrator cannot reach its parent, its sibling, or another company
    for company in (PARENT, SOUTH, OTHER):
        response = client.get(f"/api/v1/admin/{company}/people")
        assert response.status_code == 403, company
        assert response.json()["error"] == "403 Forbidden"


def test_parent_company_lists_its_children(parent_client: JrniClient) -> None:
    company = parent_client.ok("GET", f"/api/v1/admin/{PARENT}/company")
    assert company["children_count"] == 2
    child_links = [link["href"] for link in company["_links"]["children"]]
    child = parent_client.ok("GET", child_links[0])
    assert child["id"] == NORTH
    assert child["parent_id"] == PARENT
    assert parent_client.ok("GET", child["_links"]["parent"]["href"])["id"] == PARENT


def test_login_at_a_child_company_with_id(base_url: str) -> None:
    client = JrniClient(base_url)
    assert client.login(*PARENT_ADMIN, company_id=SOUTH)["company_id"] == SOUTH
    # the branch admin cannot log in at a company outside its own tree
    response = requests.post(
        f"{base_url}/api/v1/login",
        json={"email": BRANCH_ADMIN[0], "password": BRANCH_ADMIN[1], "id": PARENT},
        headers={"App-Id": APP_ID},
        timeout=5,
    )
    assert response.status_code == 403


def test_app_id_is_required_and_app_key_must_match(base_url: str) -> None:
    login = {"email": BRANCH_ADMIN[0], "password": BRANCH_ADMIN[1]}
    cases = [
        {},  # no App-Id
        {"App-Id": "unknown-app"},
        {"App-Id": APP_ID, "App-Key": "wrong-key"},
    ]
    for headers in cases:
        response = requests.post(f"{base_url}/api/v1/login", json=login, headers=headers, timeout=5)
        assert response.status_code == 401, headers
        assert response.json() == UNAUTHORIZED
    # App-Id alone is enough (newer tenants send no App-Key)
    response = requests.post(f"{base_url}/api/v1/login", json=login, headers={"App-Id": APP_ID}, timeout=5)
    assert response.status_code == 201


def test_admin_calls_need_a_token(base_url: str) -> None:
    response = requests.get(f"{base_url}/api/v1/admin/{NORTH}/people", headers={"App-Id": APP_ID}, timeout=5)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_a_token_minted_at_a_child_reaches_that_child_only(base_url: str) -> None:
    client = JrniClient(base_url)
    client.login(*PARENT_ADMIN, company_id=SOUTH)
    assert client.get(f"/api/v1/admin/{SOUTH}/company").status_code == 200
    for company in (PARENT, NORTH, OTHER):  # not the parent it was minted from, nor a sibling
        assert client.get(f"/api/v1/admin/{company}/company").status_code == 403, company


def test_failed_calls_do_not_keep_a_token_alive(client: JrniClient, base_url: str) -> None:
    people = f"/api/v1/admin/{NORTH}/people"
    assert client.get(people).status_code == 200
    control(base_url, "POST", "clock", json={"advance_seconds": 23 * 3600})
    # a 404 and a 403 are not "uses" of the token
    assert client.get(f"/api/v1/admin/{NORTH}/bookings/999999").status_code == 404
    assert client.get(f"/api/v1/admin/{PARENT}/people").status_code == 403
    control(base_url, "POST", "clock", json={"advance_seconds": 3600 + 1})
    response = client.get(people)
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
