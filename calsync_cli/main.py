"""``calsync``: the operator CLI of the admin API, and ``calsync local`` (the local stack, for development).

Exit codes: 0 ok; 1 the operation reported a failure (a failed check, a bad row, a run ending in error, a refused
input); 2 usage; 3 not found; 4 conflict or precondition (409, 412, 428); 5 the API or the stack could not be reached,
answered 5xx or timed out.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console

from calsync.domain import validation
from calsync.domain.errors import InvalidInputError
from calsync_cli import client, views
from calsync_cli.client import Api, ApiError, SigV4Signer
from calsync_cli.views import Followed

app = typer.Typer(
    name="calsync",
    help="Operate calsync through its admin API: a deployed stack (--stack NAME, signed with SigV4) or any URL "
    "(--api URL, e.g. the local stack's).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
integrations_app = typer.Typer(
    help="List, show, create, change and delete integrations.", no_args_is_help=True
)
mappings_app = typer.Typer(help="JRNI staff and resources and their mailboxes.", no_args_is_help=True)
dead_letters_app = typer.Typer(help="Messages calsync gave up on, and replaying them.", no_args_is_help=True)
app.add_typer(integrations_app, name="integrations")
app.add_typer(mappings_app, name="mappings")
app.add_typer(dead_letters_app, name="dead-letters")

PAGE = 500  # the largest page GET …/mappings gives
POLL_SECONDS = 0.5


class Kind(StrEnum):
    person = "person"
    resource = "resource"


@dataclass
class Cli:
    """The global options, and the API client built from them on first use."""

    api_url: str | None
    stack: str | None
    profile: str | None
    region: str | None
    sign: bool
    integration_id: str | None
    json: bool
    timeout: float
    out: Console
    err: Console
    _api: Api | None = field(default=None, repr=False)

    def api(self) -> Api:
        if self._api is None:
            if self.api_url and self.stack:
                raise ApiError(client.USAGE, "both --api and --stack given", "give one of them")
            if self.stack:
                url = client.stack_api_url(self.stack, self.profile, self.region)
                self._api = Api(
                    url, signer=SigV4Signer.from_profile(self.profile, self.region), timeout=self.timeout
                )
            elif self.api_url:
                signer = SigV4Signer.from_profile(self.profile, self.region) if self.sign else None
                self._api = Api(self.api_url, signer=signer, timeout=self.timeout)
            else:
                raise ApiError(
                    client.USAGE,
                    "no API given",
                    "give --stack NAME (a deployed calsync stack) or --api URL (or set CALSYNC_API; the local "
                    "stack's is in the ready line of calsync local)",
                )
        return self._api

    def integration(self) -> str:
        """The integration the command is about: --integration, or the only one there is."""
        if self.integration_id:
            return self.integration_id
        known = [i["id"] for i in self.api().call("GET", "/admin/integrations").body["integrations"]]
        if len(known) == 1:
            self.integration_id = str(known[0])
            return self.integration_id
        if not known:
            raise ApiError(
                client.FAILED,
                "there is no integration yet",
                "create one: calsync integrations create FILE.json",
            )
        raise ApiError(
            client.USAGE,
            f"there are {len(known)} integrations: {', '.join(map(str, known))}",
            "say which with --integration ID (or set CALSYNC_INTEGRATION)",
        )

    def path(self, tail: str = "") -> str:
        return f"/admin/integrations/{self.integration()}{tail}"

    def emit(self, answer: Any, show: Callable[[], None]) -> None:
        """The API's answer as JSON with --json, else as ``show`` shows it."""
        if self.json:
            print(json.dumps(answer, indent=2, sort_keys=False))
        else:
            show()


F = TypeVar("F", bound=Callable[..., Any])


def handled(command: F) -> F:
    """Errors of the API as one message, what to do, and the command's exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        cli = _cli()
        try:
            return command(*args, **kwargs)
        except ApiError as exc:
            if cli.json and exc.body is not None:
                print(json.dumps(exc.body, indent=2))
            cli.err.print(f"calsync: {exc.message}", markup=False, soft_wrap=True)
            cli.err.print(f"  what to do: {exc.fix}", markup=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return run  # type: ignore[return-value]


_current: list[Cli] = []  # the invocation's options, set by ``options`` before any command runs


def _cli() -> Cli:
    return _current[-1]


@app.callback()
def options(
    api: Annotated[
        str | None,
        typer.Option("--api", envvar="CALSYNC_API", help="the API's base URL (no signing unless --sign)"),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(
            "--stack", help="a deployed calsync stack: its ApiUrl output, every request signed (SigV4)"
        ),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="the AWS CLI profile (default: AWS_PROFILE, then default)")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", help="the AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, profile)"),
    ] = None,
    sign: Annotated[bool, typer.Option("--sign", help="sign requests to --api with SigV4 as well")] = False,
    integration: Annotated[
        str | None,
        typer.Option(
            "--integration",
            "-i",
            envvar="CALSYNC_INTEGRATION",
            help="the integration (default: the only one there is)",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="the API's answers as JSON on stdout")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds per request")] = 30.0,
) -> None:
    """Global options; the commands below say what they do."""
    out, err = views.consoles()
    _current[:] = [Cli(api, stack, profile, region, sign, integration, json_output, timeout, out, err)]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def local(ctx: typer.Context) -> None:
    """Run the whole stack on loopback (moto, the emulators, the functions); calsync local --help for its options."""
    try:
        # By name: the local stack is development code, checked by mypy apart from this package.
        local_main = importlib.import_module("local.cli").main
    except ImportError as exc:  # installed with the cli extra only: the local stack needs the dev group
        _cli().err.print(f"calsync local needs the development install (make setup): {exc}", markup=False)
        raise typer.Exit(client.USAGE) from None
    raise typer.Exit(local_main(["local", *ctx.args]))


# ---- integrations ----------------------------------------------------------------------------------------------------


@integrations_app.command("list")
@handled
def integrations_list() -> None:
    """Every integration."""
    cli = _cli()
    answer = cli.api().call("GET", "/admin/integrations").body
    rows = [
        [
            i["id"],
            i["name"],
            f"{i['jrni']['base_url']} (company {i['jrni']['company_id']})",
            i["exchange"]["endpoint"],
            f"{i['exchange']['auth']}, {i['exchange']['access_type']}",
            "on" if i.get("appointment_lock") else "off",
        ]
        for i in answer["integrations"]
    ]
    columns = ["id", "name", "JRNI", "Exchange", "auth", "lock"]
    cli.emit(answer, lambda: cli.out.print(views.table("integrations", columns, rows)))


@integrations_app.command("show")
@handled
def integrations_show(integration_id: Annotated[str, typer.Argument(help="the integration's id")]) -> None:
    """One integration: every setting, by the key integrations set takes."""
    cli = _cli()
    answer = cli.api().call(
        "GET", f"/admin/integrations/{_checked(validation.integration_id, integration_id)}"
    )
    pairs = views.flatten(answer.body)
    title = f"integration {integration_id} (version {answer.headers.get('ETag', '?').strip(chr(34))})"
    cli.emit(
        answer.body,
        lambda: cli.out.print(views.table(title, ["key", "value"], [[k, json.dumps(v)] for k, v in pairs])),
    )


@integrations_app.command("create")
@handled
def integrations_create(
    file: Annotated[
        Path, typer.Argument(help="the integration as JSON (the body of POST /admin/integrations)")
    ],
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="sent again, the same answer without a second integration"),
    ] = None,
) -> None:
    """Create an integration from a JSON file."""
    cli = _cli()
    body = _json_file(file)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    made = cli.api().call("POST", "/admin/integrations", body=body, headers=headers).body
    cli.emit(
        made,
        lambda: cli.out.print(
            f"integration {made['id']} created; point JRNI's webhook at <ApiUrl>{made.get('webhook_path', '')}",
            markup=False,
            soft_wrap=True,
        ),
    )


@integrations_app.command("set")
@handled
def integrations_set(
    changes: Annotated[
        list[str],
        typer.Argument(help="KEY=VALUE: dotted keys (exchange.verify_tls=false); values JSON or text"),
    ],
) -> None:
    """Change settings of the integration (--integration): read it, then PATCH it if nobody changed it meanwhile."""
    cli = _cli()
    patch: dict[str, Any] = {}
    for change in changes:
        key, sep, raw = change.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{change!r} is not KEY=VALUE", param_hint="CHANGES")
        _put(patch, key.strip().split("."), _value(raw))
    api, path = cli.api(), cli.path()
    etag = api.call("GET", path).headers.get("ETag")
    if not etag:
        raise ApiError(
            client.FAILED, "the API gave no ETag for the integration", "the API is too old for set"
        )
    # A JSON merge patch (RFC 7386), sent as application/json: what the API's validation reads.
    answer = api.call("PATCH", path, body=patch, headers={"If-Match": etag})
    body = answer.body
    changed = ", ".join(change.partition("=")[0] for change in changes)
    cli.emit(body, lambda: cli.out.print(f"integration {body.get('id')}: {changed} changed", markup=False))


@integrations_app.command("delete")
@handled
def integrations_delete(
    integration_id: Annotated[str, typer.Argument(help="the integration's id")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete an integration (its mappings and statuses with it)."""
    cli = _cli()
    _checked(validation.integration_id, integration_id)
    if not yes:
        if not sys.stdin.isatty():
            raise typer.BadParameter("give --yes to delete without a terminal to ask on", param_hint="--yes")
        typer.confirm(f"Delete integration {integration_id} and its mappings?", abort=True)
    cli.api().call("DELETE", f"/admin/integrations/{integration_id}")
    cli.emit({"deleted": integration_id}, lambda: cli.out.print(f"integration {integration_id} deleted"))


# ---- test ------------------------------------------------------------------------------------------------------------


@app.command("test")
@handled
def test_integration(
    mailbox: Annotated[
        str | None, typer.Option("--mailbox", "-m", help="a mailbox to try (default: one mapped)")
    ] = None,
    write: Annotated[bool, typer.Option("--write", help="also write and remove a test item")] = False,
) -> None:
    """Check the integration end to end: secrets, JRNI, Exchange, a mailbox; exit 1 when a check failed."""
    cli = _cli()
    if mailbox is not None:
        mailbox = _checked(validation.mailbox_address, mailbox)
    answer = cli.api().call("POST", cli.path("/test"), body={"mailbox": mailbox, "write": write}).body
    checks = answer.get("checks", [])
    rows = [
        [f"{views.MARKS.get(c['state'], '?')} {c['state']}", c["name"], c.get("detail"), c.get("fix")]
        for c in checks
    ]

    def show() -> None:
        cli.out.print(views.table(f"test of {cli.integration()}", ["", "check", "detail", "fix"], rows))
        failed = sum(c["state"] == "failed" for c in checks)
        cli.out.print(
            "all checks passed" if answer.get("ok") else f"{failed} check(s) failed: see the fix column"
        )

    cli.emit(answer, show)
    if not answer.get("ok") or any(c["state"] == "failed" for c in checks):
        raise typer.Exit(client.FAILED)


# ---- preview ---------------------------------------------------------------------------------------------------------


@app.command("preview")
@handled
def preview(
    booking: Annotated[
        str | None,
        typer.Option("--booking", "-b", help="a JRNI booking's id (default: the built-in sample booking)"),
    ] = None,
    subject: Annotated[
        Path | None, typer.Option("--subject", help="a subject template to try instead of the integration's")
    ] = None,
    body: Annotated[
        Path | None, typer.Option("--body", help="a body template to try instead of the integration's")
    ] = None,
) -> None:
    """Show the subject and body a booking gets in Outlook, with the integration's templates or with the files given
    (nothing is saved); exit 1 with each problem and where it is when a template cannot be used."""
    cli = _cli()
    if booking is not None and not booking.isdigit():
        raise typer.BadParameter(f"{booking!r} is not a JRNI booking id (digits)", param_hint="--booking")
    request: dict[str, Any] = {"booking_id": booking}
    if subject is not None:
        request["subject_template"] = _read(subject)
    if body is not None:
        request["body_template"] = _read(body)
    answer = cli.api().call("POST", cli.path("/templates/preview"), body=request).body

    def show() -> None:
        cli.out.print(f"{answer['booking']}, as Outlook shows it", markup=False)
        cli.out.print(f"subject: {answer['subject']}", markup=False, soft_wrap=True)
        cli.out.print(f"body ({answer['body_type']}):", markup=False)
        cli.out.print(answer["body"], markup=False, soft_wrap=True, highlight=False)

    cli.emit(answer, show)


# ---- mappings --------------------------------------------------------------------------------------------------------


def _all_mappings(cli: Cli) -> list[dict[str, Any]]:
    """Every row of GET …/mappings, page after page."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE}
        if cursor:
            params["cursor"] = cursor
        page = cli.api().call("GET", cli.path("/mappings"), params=params).body
        rows += page["mappings"]
        cursor = page.get("next_cursor")
        if not cursor:
            return rows


@mappings_app.command("list")
@handled
def mappings_list() -> None:
    """Every JRNI staff member and resource, and the mailbox each is mapped to."""
    cli = _cli()
    rows = _all_mappings(cli)
    shown = [
        [
            r["kind"],
            r["jrni_id"],
            r.get("name"),
            r.get("mailbox") or "(not mapped)",
            r.get("jrni_ews_email"),
            (r.get("status") or {}).get("state"),
            len(r.get("problems") or []) or None,
        ]
        for r in rows
    ]
    columns = ["kind", "id", "name", "mailbox", "JRNI's ews_email", "state", "problems"]
    cli.emit({"mappings": rows}, lambda: cli.out.print(views.table("mappings", columns, shown)))


@mappings_app.command("set")
@handled
def mappings_set(
    kind: Annotated[Kind, typer.Argument(help="person or resource")],
    jrni_id: Annotated[str, typer.Argument(help="the JRNI id")],
    mailbox: Annotated[str, typer.Argument(help="the mailbox address")],
    wait: Annotated[bool, typer.Option("--wait", help="follow the backfill to its end")] = False,
) -> None:
    """Map a staff member or resource to a mailbox; a new mapping is backfilled."""
    cli = _cli()
    jrni_id = _checked(validation.jrni_id, jrni_id)
    mailbox = _checked(validation.mailbox_address, mailbox)
    answer = (
        cli.api().call("PUT", cli.path(f"/mappings/{kind.value}/{jrni_id}"), body={"mailbox": mailbox}).body
    )
    run = (answer.get("backfill") or {}).get("run_id")
    note = f"backfill {run} started" if run else "unchanged: already mapped there"
    if wait and run:
        _follow(cli, [_backfill(kind.value, jrni_id, answer["mailbox"], run)], answer)
        return
    cli.emit(
        answer, lambda: cli.out.print(f"{kind.value} {jrni_id} → {answer['mailbox']}; {note}", markup=False)
    )


@mappings_app.command("unset")
@handled
def mappings_unset(
    kind: Annotated[Kind, typer.Argument(help="person or resource")],
    jrni_id: Annotated[str, typer.Argument(help="the JRNI id")],
) -> None:
    """Remove a mapping (the calendar stops syncing)."""
    cli = _cli()
    jrni_id = _checked(validation.jrni_id, jrni_id)
    cli.api().call("DELETE", cli.path(f"/mappings/{kind.value}/{jrni_id}"))
    answer = {"kind": kind.value, "jrni_id": jrni_id, "mailbox": None}
    cli.emit(answer, lambda: cli.out.print(f"{kind.value} {jrni_id} is no longer mapped"))


@mappings_app.command("import")
@handled
def mappings_import(
    file: Annotated[Path, typer.Argument(help=".csv (kind,jrni_id,mailbox) or .json ({'mappings': [...]})")],
    wait: Annotated[bool, typer.Option("--wait", help="follow the backfills to their end")] = False,
) -> None:
    """Map many at once; nothing is applied when a row is bad (each shown with its line; exit 1)."""
    cli = _cli()
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise typer.BadParameter(f"{file} is neither .csv nor .json", param_hint="FILE")
    api, path = cli.api(), cli.path("/mappings/import")
    if suffix == ".csv":
        answer = api.call("POST", path, text=_read(file), content_type="text/csv", ok=(422,))
    else:
        body = _json_file(file)
        answer = api.call(
            "POST", path, body={"mappings": body} if isinstance(body, list) else body, ok=(422,)
        )
    result = answer.body
    if answer.status == 422:
        if not isinstance(result, dict) or not isinstance(result.get("errors"), list):
            raise client.refused("POST", path, answer)  # the body itself refused, not its rows
        if cli.json:
            print(json.dumps(result, indent=2))
        _bad_rows(cli, file, result)
        raise typer.Exit(client.FAILED)
    backfills = result.get("backfills", [])
    summary = f"{result.get('applied', 0)} applied, {result.get('unchanged', 0)} unchanged, {len(backfills)} backfill(s)"
    if wait and backfills:
        if not cli.json:
            cli.out.print(summary, markup=False)
        _follow(
            cli,
            [_backfill(b["kind"], str(b["jrni_id"]), b.get("mailbox"), b["run_id"]) for b in backfills],
            result,
        )
        return
    cli.emit(result, lambda: cli.out.print(summary, markup=False))


def _bad_rows(cli: Cli, file: Path, result: dict[str, Any]) -> None:
    cli.err.print(
        f"calsync: {result.get('message') or 'rows cannot be imported'}", markup=False, soft_wrap=True
    )
    for row in result["errors"]:
        cli.err.print(f"  {file.name}:{row.get('line')}: {row.get('message')}", markup=False, soft_wrap=True)
    cli.err.print(
        "  what to do: correct those rows and import the file again (nothing was applied)", markup=False
    )


@mappings_app.command("automap")
@handled
def mappings_automap(
    wait: Annotated[bool, typer.Option("--wait", help="follow the backfills to their end")] = False,
) -> None:
    """Map every staff member and resource whose mailbox JRNI or Exchange names; say why for the others."""
    cli = _cli()
    before = (
        {(r["kind"], str(r["jrni_id"])): r.get("last_reconciled_at") for r in _all_mappings(cli)}
        if wait
        else {}
    )
    result = cli.api().call("POST", cli.path("/mappings/automap"), body={}).body
    mapped, not_mapped = result.get("mapped", []), result.get("not_mapped", [])

    def show() -> None:
        cli.out.print(
            views.table(
                f"mapped ({len(mapped)})",
                ["kind", "id", "name", "mailbox"],
                [[m["kind"], m["jrni_id"], m.get("name"), m.get("mailbox")] for m in mapped],
            )
        )
        cli.out.print(
            views.table(
                f"not mapped ({len(not_mapped)})",
                ["kind", "id", "name", "why"],
                [[m["kind"], m["jrni_id"], m.get("name"), m.get("reason")] for m in not_mapped],
            )
        )

    if wait and mapped:
        if not cli.json:
            show()
        followed = []
        for m in mapped:
            key = (m["kind"], str(m["jrni_id"]))
            run = m.get("run_id") or (m.get("backfill") or {}).get("run_id")
            item = _backfill(key[0], key[1], m.get("mailbox"), run)
            item.since = before.get(key)
            followed.append(item)
        _follow(cli, followed, result)
        return
    cli.emit(result, show)


# ---- status ----------------------------------------------------------------------------------------------------------


@app.command("status")
@handled
def status(
    watch: Annotated[
        bool, typer.Option("--watch", help="show it again every --interval seconds until Ctrl-C")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="seconds between two looks")] = 5.0,
) -> None:
    """Each mapping: its state, last sync, last reconcile, lag and last error in words."""
    cli = _cli()

    def look() -> tuple[dict[str, Any], Any]:
        answer = cli.api().call("GET", cli.path("/status")).body
        rows = _all_mappings(cli)
        return {"status": answer, "mappings": rows}, _status_view(answer, rows)

    answer, view = look()
    if not watch:
        cli.emit(answer, lambda: cli.out.print(view))
        return
    try:
        if cli.out.is_terminal and not cli.json:
            from rich.live import Live

            with Live(view, console=cli.out, refresh_per_second=1) as live:
                while True:
                    time.sleep(interval)
                    live.update(look()[1])
        while True:
            cli.emit(answer, functools.partial(cli.out.print, view))
            time.sleep(interval)
            answer, view = look()
    except KeyboardInterrupt:
        return


def _status_view(status_answer: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    from rich.console import Group
    from rich.text import Text

    return Group(
        Text(views.status_summary(status_answer)),
        views.table(None, views.STATUS_COLUMNS, views.status_rows(status_answer, rows)),
    )


# ---- reconcile and resync --------------------------------------------------------------------------------------------

# Both commands start a reconcile run and can follow it.
WaitForRun = Annotated[
    bool, typer.Option("--wait", help="follow the run to its end (exit 1 if it ends in error)")
]


@app.command("reconcile")
@handled
def reconcile(
    deep: Annotated[
        bool, typer.Option("--deep", help="the whole sync window, not only what changed")
    ] = False,
    wait: WaitForRun = False,
) -> None:
    """Reconcile every mapping of the integration now."""
    cli = _cli()
    run = cli.api().call("POST", cli.path("/reconcile"), body={"deep": deep}).body
    if wait:
        followed = Followed(
            f"reconcile {run['run_id']}", run_id=run["run_id"], total=run.get("mappings_total")
        )
        _follow(cli, [followed], run)
        return
    cli.emit(
        run, lambda: cli.out.print(f"reconcile {run['run_id']} started ({'deep' if deep else 'incremental'})")
    )


@app.command("resync")
@handled
def resync(
    kind: Annotated[Kind, typer.Argument(help="person or resource")],
    jrni_id: Annotated[str, typer.Argument(help="the JRNI id")],
    force: Annotated[
        bool, typer.Option("--force", help="apply removals the mass-delete guard held back")
    ] = False,
    wait: WaitForRun = False,
) -> None:
    """Reconcile one mapping deeply now."""
    cli = _cli()
    jrni_id = _checked(validation.jrni_id, jrni_id)
    run = (
        cli.api()
        .call("POST", cli.path(f"/mappings/{kind.value}/{jrni_id}/resync"), body={"force": force})
        .body
    )
    if wait:
        _follow(cli, [_backfill(kind.value, jrni_id, None, run["run_id"], what="resync")], run)
        return
    cli.emit(run, lambda: cli.out.print(f"resync {run['run_id']} of {kind.value} {jrni_id} started"))


# ---- availability ----------------------------------------------------------------------------------------------------


@app.command("availability")
@handled
def availability(
    kind: Annotated[Kind, typer.Argument(help="person or resource")],
    jrni_id: Annotated[str, typer.Argument(help="the JRNI id")],
    day: Annotated[
        str | None,
        typer.Option("--day", help="the day to show, YYYY-MM-DD in the company's zone (default: today)"),
    ] = None,
) -> None:
    """Why a time cannot be booked: one day of JRNI bookings and blocks, Outlook's busy time and the working hours,
    one line per interval in the company's time zone; exit 3 when the staff member or resource is not mapped."""
    cli = _cli()
    jrni_id = _checked(validation.jrni_id, jrni_id)
    try:
        shown_day = date.fromisoformat(day) if day is not None else date.today()
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a day (YYYY-MM-DD)", param_hint="--day") from None
    path = cli.path("/availability")
    # The company's zone comes with the answer: asked for the UTC day first, then again for the local day when the
    # zone's midnights are not UTC's.
    answer = cli.api().call("GET", path, params=_day_query(kind, jrni_id, shown_day, UTC)).body
    zone = _zone_of(answer.get("zone"))
    if any(_day_bounds(shown_day, zone)[n].utcoffset() for n in (0, 1)):
        answer = cli.api().call("GET", path, params=_day_query(kind, jrni_id, shown_day, zone)).body

    def show() -> None:
        cli.out.print(
            f"{kind.value} {jrni_id} → {answer['mailbox']}, {shown_day.isoformat()} ({zone.key})",
            markup=False,
        )
        if not answer["intervals"]:
            cli.out.print("nothing booked, busy or working that day", markup=False)
        for interval in answer["intervals"]:
            begins = _local_time(interval["start"], shown_day, zone)
            ends = _local_time(interval["end"], shown_day, zone, end=True)
            detail = f" ({interval['detail']})" if interval.get("detail") else ""
            line = f"{begins}-{ends} {interval['source']} {interval['label']}{detail}"
            cli.out.print(line, markup=False, soft_wrap=True, highlight=False)

    cli.emit(answer, show)


def _zone_of(name: Any) -> ZoneInfo:
    """The company's zone as the API names it; UTC when it names none (or one this machine does not know)."""
    try:
        return ZoneInfo(str(name)) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    return (
        datetime.combine(day, datetime.min.time(), zone),
        datetime.combine(day + timedelta(days=1), datetime.min.time(), zone),
    )


def _day_query(kind: Kind, jrni_id: str, day: date, zone: tzinfo) -> dict[str, str]:
    start, end = _day_bounds(day, zone)
    return {"kind": kind.value, "jrni_id": jrni_id, "start": start.isoformat(), "end": end.isoformat()}


def _local_time(instant: str, day: date, zone: ZoneInfo, *, end: bool = False) -> str:
    """``HH:MM`` in ``zone`` on ``day`` (``24:00`` for the midnight ending it); with its date on another day."""
    local = datetime.fromisoformat(instant).astimezone(zone)
    if end and local.date() == day + timedelta(days=1) and local.time() == datetime.min.time():
        return "24:00"
    return local.strftime("%H:%M") if local.date() == day else local.strftime("%Y-%m-%d %H:%M")


# ---- dead letters ----------------------------------------------------------------------------------------------------


@dead_letters_app.command("list")
@handled
def dead_letters_list() -> None:
    """Messages calsync gave up on: what each was about, and why."""
    cli = _cli()
    answer = cli.api().call("GET", cli.path("/dead-letters")).body
    rows = [
        [
            d["id"],
            d.get("queue"),
            ", ".join(f"{k} {v}" for k, v in (d.get("about") or {}).items()),
            d.get("reason"),
            views.age(d.get("at")),
            d.get("attempts"),
        ]
        for d in answer.get("dead_letters", [])
    ]
    columns = ["id", "queue", "about", "reason", "when", "attempts"]
    cli.emit(answer, lambda: cli.out.print(views.table("dead letters", columns, rows)))


@dead_letters_app.command("replay")
@handled
def dead_letters_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="the dead letters to replay (default: all)")] = None,
) -> None:
    """Send dead letters back to their queue, once what stopped them is fixed."""
    cli = _cli()
    answer = cli.api().call("POST", cli.path("/dead-letters/replay"), body={"ids": ids} if ids else {}).body
    cli.emit(answer, lambda: cli.out.print(f"{answer.get('replayed', 0)} dead letter(s) replayed"))


# ---- following runs and backfills ------------------------------------------------------------------------------------

WAIT_SECONDS = 600.0


def _backfill(
    kind: str, jrni_id: str, mailbox: str | None, run_id: str | None, what: str = "backfill"
) -> Followed:
    label = f"{what} {kind} {jrni_id}" + (f" → {mailbox}" if mailbox else "")
    return Followed(label, run_id=run_id, key=(kind, jrni_id), unit="writes")


def _follow(cli: Cli, followed: list[Followed], answer: Any = None) -> None:
    """Follow runs and backfills to their end; with --json print the answer and the runs' last state. Exit 1 when
    one ended in error, 5 when they did not end within WAIT_SECONDS."""

    def poll(items: list[Followed]) -> None:
        rows = (
            {(r["kind"], str(r["jrni_id"])): r for r in _all_mappings(cli)}
            if any(i.key and not i.finished for i in items)
            else {}
        )
        for item in items:
            if item.finished:
                continue
            run: dict[str, Any] | None = None
            if item.run_id:
                run = cli.api().call("GET", cli.path(f"/reconcile/{item.run_id}")).body
                item.answer, item.state, item.error = run, run["state"], run.get("error")
            if item.key is None:
                assert run is not None
                item.done, item.total = run.get("mappings_done", 0), run.get("mappings_total")
                item.finished = run["state"] != "running"
                continue
            row = rows.get(item.key, {})
            backfill = row.get("backfill")
            if backfill:
                item.done, item.total = int(backfill.get("done", 0)), backfill.get("total")
                continue
            if run is not None:
                item.finished = run["state"] != "running"
            else:  # no run id given: done once the mapping was reconciled since it was asked for
                item.finished = (
                    bool(row.get("last_reconciled_at")) and row.get("last_reconciled_at") != item.since
                )
                item.state = "done" if item.finished else "running"
            if item.finished:
                if item.total is None:  # ended between two looks: its writes are what it repaired in Outlook
                    repaired = (run or {}).get("repaired") or {}
                    item.total = sum(int(repaired.get(n, 0)) for n in ("created", "updated", "rerendered"))
                item.done = item.total

    progress = cli.err if cli.json else cli.out
    try:
        views.follow(
            followed, poll, out=progress, interval=POLL_SECONDS, deadline=time.monotonic() + WAIT_SECONDS
        )
    except KeyboardInterrupt:
        cli.err.print("calsync: stopped following; the runs go on (calsync status shows them)", markup=False)
        raise typer.Exit(130) from None
    except TimeoutError:
        raise ApiError(
            client.UNREACHABLE,
            f"still running after {WAIT_SECONDS:g} s: {', '.join(i.label for i in followed if not i.finished)}",
            "look again later with calsync status; it goes on without the CLI",
        ) from None
    if cli.json:
        print(json.dumps({"answer": answer, "runs": [i.answer for i in followed if i.answer]}, indent=2))
    failed = [i for i in followed if i.state == "error"]
    for item in failed:
        cli.err.print(f"calsync: {item.label} ended in error: {item.error}", markup=False, soft_wrap=True)
    if failed:
        cli.err.print("  what to do: fix what the error names (calsync test), then run again", markup=False)
        raise typer.Exit(client.FAILED)


# ---- input -----------------------------------------------------------------------------------------------------------


def _checked(check: Callable[[str], str], text: str) -> str:
    try:
        return check(text)
    except InvalidInputError as exc:
        raise typer.BadParameter(str(exc)) from None


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc}", param_hint="FILE") from None


def _json_file(file: Path) -> Any:
    try:
        return json.loads(_read(file))
    except ValueError as exc:
        raise typer.BadParameter(f"{file} is not JSON: {exc}", param_hint="FILE") from None


def _value(raw: str) -> Any:
    """A value of ``KEY=VALUE``: JSON when it parses (false, 3, null, "x", [..]), else the text as given."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _put(patch: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        inner = patch.setdefault(key, {})
        if not isinstance(inner, dict):
            raise typer.BadParameter(f"{'.'.join(keys)} given beside {key}={json.dumps(inner)}")
        patch = inner
    patch[keys[-1]] = value


def main() -> None:
    """The ``calsync`` entry point."""
    app()
