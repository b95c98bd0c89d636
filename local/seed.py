"""The demo organisation, and how any seed is put in place: as JRNI, Exchange and an operator would set it up.

A seed file (``demo-seed.json`` beside this file is the default) has four sections:

- ``jrni`` — the JRNI emulator's own seed (companies, admins, apps, people, resources, services, schedules);
- ``exchange`` — ``service_account {address, password}`` (given ApplicationImpersonation over every mailbox) and
  ``mailboxes [{address, display_name?, time_zone?}]`` (Windows zone ids);
- ``integration`` — ``id``, ``name``, ``company_id`` (the JRNI parent), ``jrni_admin`` (an admin's e-mail from
  ``jrni.admins``), ``webhook {format: "data" | "legacy", username, password}``, optional ``options`` and the inbound
  switches ``appointment_lock`` (default true) and ``auto_confirm`` (default false);
- ``mappings`` — ``[{kind: "person" | "resource", jrni_id, mailbox}]``; staff left out stay unmapped.

Credentials go to Secrets Manager (moto) under the template's prefix; the integration and its mappings are made
through the admin API on the front, exactly as an operator would after deploying.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

DEMO_SEED = Path(__file__).resolve().with_name("demo-seed.json")
_TIMEOUT = 30


class SeedError(ValueError):
    """A seed file that cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class Seeded:
    """What the seed set up: the integration's id and its webhook URL."""

    integration_id: str
    webhook_url: str


def load_seed(path: Path) -> dict[str, Any]:
    """Read a seed file and check its shape (the emulators and the admin API check the details)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError(f"cannot read seed {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SeedError(f"{path}: a seed is a JSON object")
    missing = [name for name in ("jrni", "exchange", "integration", "mappings") if name not in data]
    if missing:
        raise SeedError(f"{path}: missing sections: {', '.join(missing)}")
    integration = data["integration"]
    for key in ("id", "name", "company_id", "jrni_admin", "webhook"):
        if key not in integration:
            raise SeedError(f"{path}: integration.{key} is required")
    admins = {a.get("email"): a for a in data["jrni"].get("admins", [])}
    if integration["jrni_admin"] not in admins:
        raise SeedError(f"{path}: integration.jrni_admin {integration['jrni_admin']!r} is not in jrni.admins")
    if not data["jrni"].get("apps"):
        raise SeedError(f"{path}: jrni.apps needs one app (its id and key go to the integration's secret)")
    return data


def _check(response: requests.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise SeedError(f"{what}: {response.status_code} {response.text[:500]}")
    return response.json() if response.content else None


def seed_emulators(seed: dict[str, Any], *, ews_url: str, jrni_url: str) -> None:
    """JRNI's companies, staff and apps; Exchange's mailboxes and the service account's ApplicationImpersonation."""
    http = requests.Session()
    _check(http.post(f"{jrni_url}/_emulator/seed", json=seed["jrni"], timeout=_TIMEOUT), "seeding JRNI")
    exchange = seed["exchange"]
    service = exchange["service_account"]
    for mailbox in [service, *exchange.get("mailboxes", [])]:
        body = {
            "address": mailbox["address"],
            "password": mailbox.get("password", "pass-for-tests"),
            "display_name": mailbox.get("display_name"),
            "time_zone": mailbox.get("time_zone", "UTC"),
        }
        _check(
            http.post(f"{ews_url}/_emulator/accounts", json=body, timeout=_TIMEOUT),
            f"adding {body['address']}",
        )
    _check(
        http.post(
            f"{ews_url}/_emulator/impersonation",
            json={"service_account": service["address"], "mailboxes": ["*"]},
            timeout=_TIMEOUT,
        ),
        "granting ApplicationImpersonation",
    )


def store_secrets(
    seed: dict[str, Any], integration_id: str, *, secrets_client: Any, secrets_prefix: str
) -> dict[str, str]:
    """The integration's three secrets (JRNI admin and app, the service account, the webhook's credentials) in
    Secrets Manager under ``{prefix}{integration id}/jrni|exchange|webhook``; their names by part."""
    integration = seed["integration"]
    admin = next(a for a in seed["jrni"]["admins"] if a["email"] == integration["jrni_admin"])
    app = seed["jrni"]["apps"][0]
    service = seed["exchange"]["service_account"]
    webhook = integration["webhook"]
    names = {part: f"{secrets_prefix}{integration_id}/{part}" for part in ("jrni", "exchange", "webhook")}
    values = {
        "jrni": {
            "app_id": app["app_id"],
            "app_key": app.get("app_key", ""),
            "email": admin["email"],
            "password": admin["password"],
        },
        "exchange": {"username": service["address"], "password": service["password"]},
        "webhook": {"username": webhook["username"], "password": webhook["password"]},
    }
    for part, name in names.items():
        secrets_client.create_secret(Name=name, SecretString=json.dumps(values[part]))
    return names


def apply_seed(
    seed: dict[str, Any],
    *,
    api_url: str,
    ews_url: str,
    jrni_url: str,
    secrets_client: Any,
    secrets_prefix: str,
) -> Seeded:
    """Seed JRNI and Exchange, store the secrets, create the integration and mappings, point JRNI's webhooks."""
    http = requests.Session()
    seed_emulators(seed, ews_url=ews_url, jrni_url=jrni_url)
    integration = seed["integration"]
    integration_id = str(integration["id"])
    webhook = integration["webhook"]
    names = store_secrets(seed, integration_id, secrets_client=secrets_client, secrets_prefix=secrets_prefix)

    body = {
        "id": integration_id,
        "name": integration["name"],
        "jrni": {
            "base_url": jrni_url,
            "company_id": str(integration["company_id"]),
            "secret_name": names["jrni"],
        },
        "exchange": {
            "endpoint": f"{ews_url}/EWS/Exchange.asmx",
            "secret_name": names["exchange"],
            "auth": "basic",
            "access_type": "impersonation",
        },
        "webhook_secret_name": names["webhook"],
        "options": integration.get("options", {}),
        "appointment_lock": bool(integration.get("appointment_lock", True)),
        "auto_confirm": bool(integration.get("auto_confirm", False)),
        "test_endpoints": True,  # the emulators, on loopback http
    }
    _check(
        http.post(f"{api_url}/admin/integrations", json=body, timeout=_TIMEOUT), "creating the integration"
    )
    # An operator first looks at the list JRNI gives, then maps; a mapping to someone JRNI does not list is a mistake.
    # Every page of it (the list is paged; a seed's organisation fits in one page of 500).
    known: set[tuple[str, str]] = set()
    cursor: str | None = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        listed = _check(
            http.get(
                f"{api_url}/admin/integrations/{integration_id}/mappings", params=params, timeout=_TIMEOUT
            ),
            "listing JRNI staff and resources",
        )
        known |= {(row["kind"], str(row["jrni_id"])) for row in listed["mappings"]}
        cursor = listed.get("next_cursor")
        if not cursor:
            break
    for mapping in seed["mappings"]:
        kind, jrni_id = mapping["kind"], str(mapping["jrni_id"])
        if (kind, jrni_id) not in known:
            raise SeedError(
                f"mapping {kind} {jrni_id}: JRNI lists no such {kind} under company {integration['company_id']}"
            )
        _check(
            http.put(
                f"{api_url}/admin/integrations/{integration_id}/mappings/{kind}/{jrni_id}",
                json={"mailbox": mapping["mailbox"]},
                timeout=_TIMEOUT,
            ),
            f"mapping {kind} {jrni_id}",
        )

    webhook_url = f"{api_url}/webhooks/jrni/{integration_id}"
    _check(
        http.post(f"{jrni_url}/_emulator/webhooks", json=_receiver(webhook, webhook_url), timeout=_TIMEOUT),
        "pointing JRNI's webhooks",
    )
    return Seeded(integration_id, webhook_url)


def _receiver(webhook: dict[str, Any], url: str) -> dict[str, Any]:
    return {
        "url": url,
        "format": webhook.get("format", "data"),
        "auth": {"basic": {"username": webhook["username"], "password": webhook["password"]}},
    }


def reseed(seed: dict[str, Any] | None, seeded: Seeded | None, *, ews_url: str, jrni_url: str) -> None:
    """Both emulators back to what ``apply_seed`` left: faults cleared; JRNI emptied and seeded again (its bookings
    and blocks gone) with its webhooks pointed at the integration again; impersonation granted again and every
    mailbox emptied (as their owners would delete the items, so subscriptions stay and see it)."""
    http = requests.Session()
    _check(http.delete(f"{jrni_url}/_emulator/faults", timeout=_TIMEOUT), "clearing JRNI's faults")
    _check(http.post(f"{jrni_url}/_emulator/reset", timeout=_TIMEOUT), "resetting JRNI")
    _check(http.delete(f"{ews_url}/_emulator/faults", timeout=_TIMEOUT), "clearing the EWS emulator's faults")
    if seed is None:
        return
    _check(http.post(f"{jrni_url}/_emulator/seed", json=seed["jrni"], timeout=_TIMEOUT), "seeding JRNI")
    if seeded is not None:
        _check(
            http.post(
                f"{jrni_url}/_emulator/webhooks",
                json=_receiver(seed["integration"]["webhook"], seeded.webhook_url),
                timeout=_TIMEOUT,
            ),
            "pointing JRNI's webhooks",
        )
    exchange = seed["exchange"]
    _check(
        http.post(
            f"{ews_url}/_emulator/impersonation",
            json={"service_account": exchange["service_account"]["address"], "mailboxes": ["*"]},
            timeout=_TIMEOUT,
        ),
        "granting ApplicationImpersonation",
    )
    for mailbox in exchange.get("mailboxes", []):
        address = mailbox["address"]
        items = _check(
            http.get(f"{ews_url}/_emulator/mailboxes/{address}/items", timeout=_TIMEOUT), f"reading {address}"
        )
        for item in items or []:
            _check(
                http.delete(
                    f"{ews_url}/_emulator/mailboxes/{address}/items/{quote(item['id'], safe='')}",
                    timeout=_TIMEOUT,
                ),
                f"emptying {address}",
            )
