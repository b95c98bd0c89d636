"""How ``calsync`` talks to an API: SigV4 signatures that verify, the stack's ApiUrl read from CloudFormation, and
the exit codes of an API that fails or does not answer in time. Against a small HTTP server on loopback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import mock_aws

from tests.cli.conftest import calsync
from tests.cli.loopback import Received, Server

ACCESS_KEY = "AKIDCALSYNCTESTS"  # made up, for the tests' own profile
SECRET_KEY = "secret-for-tests-only"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/execute-api/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


@pytest.fixture
def aws_profile(tmp_path: Path) -> dict[str, str | None]:
    """An AWS CLI profile ``ops`` in files of the test's own (nothing of the machine's is read)."""
    (tmp_path / "credentials").write_text(
        f"[ops]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n", encoding="utf-8"
    )
    (tmp_path / "config").write_text("[profile ops]\nregion = eu-west-2\n", encoding="utf-8")
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_REGION": None,
        "AWS_DEFAULT_REGION": None,
        "AWS_ENDPOINT_URL": None,
    }


def _signature_of(received: Received, base_url: str, region: str) -> str:
    """The signature botocore computes for the request as the server received it, over the headers it names."""
    match = AUTHORIZATION.match(received.headers["Authorization"])
    assert match
    headers = {k.lower(): v for k, v in received.headers.items()}
    signed = {name: headers[name] for name in match["signed"].split(";")}
    origin = re.match(r"^https?://[^/]+", base_url)
    assert origin
    request = AWSRequest(
        method=received.method, url=origin.group(0) + received.path, data=received.body, headers=signed
    )
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "execute-api", region)
    return str(auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request))


def test_requests_to_an_api_are_signed_with_sigv4_for_the_profile_given_and_the_signature_verifies(
    server: Server, aws_profile: dict[str, str | None]
) -> None:
    server.answer = (
        200,
        {"kind": "person", "jrni_id": "7", "mailbox": "ann@bank.example.test", "backfill": None},
    )
    answer = calsync(
        "--api", server.url, "--sign", "--profile", "ops", "--integration", "bank-1",
        "mappings", "set", "person", "7", "ann@bank.example.test",
        env=aws_profile,
    )  # fmt: skip
    assert answer.exit_code == 0, answer.stderr
    (received,) = server.received
    assert received.method == "PUT" and received.path == "/v1/admin/integrations/bank-1/mappings/person/7"
    match = AUTHORIZATION.match(received.headers["Authorization"])
    assert match, received.headers["Authorization"]
    assert match["key"] == ACCESS_KEY and match["region"] == "eu-west-2"  # the profile's key and region
    assert {"host", "x-amz-date", "content-type"} <= set(match["signed"].split(";"))
    assert _signature_of(received, server.url, "eu-west-2") == match["signature"]
    # The body is covered: the same headers over another body do not verify.
    tampered = Received(
        received.method, received.path, received.headers, received.body.replace(b"ann", b"bob")
    )
    assert _signature_of(tampered, server.url, "eu-west-2") != match["signature"]


def test_aws_region_comes_before_the_profiles_region_as_the_aws_cli_reads_it(
    server: Server, aws_profile: dict[str, str | None]
) -> None:
    answer = calsync(
        "--api", server.url, "--sign", "integrations", "list",
        env={**aws_profile, "AWS_PROFILE": "ops", "AWS_REGION": "eu-central-1"},
    )  # fmt: skip
    assert answer.exit_code == 0, answer.stderr
    (received,) = server.received
    match = AUTHORIZATION.match(received.headers["Authorization"])
    assert match and match["region"] == "eu-central-1"
    assert _signature_of(received, server.url, "eu-central-1") == match["signature"]


def test_without_sign_an_api_gets_no_authorization_header(server: Server) -> None:
    answer = calsync("--api", server.url, "integrations", "list")
    assert answer.exit_code == 0
    (received,) = server.received
    assert "Authorization" not in received.headers


def test_a_profile_that_does_not_exist_is_a_usage_error(
    server: Server, aws_profile: dict[str, str | None]
) -> None:
    answer = calsync(
        "--api", server.url, "--sign", "--profile", "nobody", "integrations", "list", env=aws_profile
    )
    assert answer.exit_code == 2
    assert "nobody" in answer.stderr and "what to do:" in answer.stderr
    assert server.received == []


def test_stack_reads_the_api_url_from_the_stacks_outputs_and_signs(server: Server) -> None:
    env: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": None,
        "AWS_DEFAULT_REGION": "eu-west-2",
        "AWS_REGION": None,
        "AWS_ENDPOINT_URL": None,
    }
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"ApiUrl": {"Value": server.url}},
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        with mock_aws():
            boto3.client("cloudformation").create_stack(
                StackName="calsync-test", TemplateBody=json.dumps(template)
            )
            answer = calsync("--stack", "calsync-test", "integrations", "list", env=env)
            missing = calsync("--stack", "no-such-stack", "integrations", "list", env=env)
    assert answer.exit_code == 0, answer.stderr
    (received,) = server.received
    assert received.path == "/v1/admin/integrations"
    match = AUTHORIZATION.match(received.headers["Authorization"])
    assert match and match["key"] == ACCESS_KEY
    assert _signature_of(received, server.url, "eu-west-2") == match["signature"]
    assert missing.exit_code == 5
    assert "cannot read the stack 'no-such-stack'" in missing.stderr and "what to do:" in missing.stderr


def test_an_api_answering_5xx_is_exit_5_with_its_message(server: Server) -> None:
    server.answer = (503, {"message": "try again shortly: DynamoDB throttled"})
    answer = calsync("--api", server.url, "integrations", "list")
    assert answer.exit_code == 5
    assert "the API failed (503): try again shortly: DynamoDB throttled" in answer.stderr


def test_an_api_slower_than_the_timeout_is_exit_5(server: Server) -> None:
    server.delay = 1.0
    answer = calsync("--api", server.url, "--timeout", "0.2", "integrations", "list")
    assert answer.exit_code == 5
    assert "did not answer GET /admin/integrations within 0.2 s" in answer.stderr


@pytest.mark.parametrize(("status", "code"), [(404, 3), (409, 4), (412, 4), (428, 4), (422, 1)])
def test_exit_codes_follow_the_apis_answer(server: Server, status: int, code: int) -> None:
    server.answer = (status, {"message": f"refused with {status}"})
    answer = calsync("--api", server.url, "--json", "integrations", "delete", "bank-1", "--yes")
    assert answer.exit_code == code
    assert f"refused with {status}" in answer.stderr
    assert json.loads(answer.stdout) == {"message": f"refused with {status}"}  # --json: the API's answer


def test_set_sends_a_merge_patch_with_the_etag_it_read_and_a_412_says_run_again(server: Server) -> None:
    server.answers = {"GET": (200, {"id": "bank-1"}), "PATCH": (200, {"id": "bank-1"})}
    server.etag = '"3"'
    changes = [
        "appointment_lock=false",
        "exchange.verify_tls=false",
        "options.block_subject=Busy",
        "subject_template=null",
    ]
    answer = calsync("--api", server.url, "-i", "bank-1", "integrations", "set", *changes)
    assert answer.exit_code == 0, answer.stderr
    read, patched = server.received
    assert (read.method, patched.method) == ("GET", "PATCH")
    assert patched.path == "/v1/admin/integrations/bank-1" and patched.headers["If-Match"] == '"3"'
    assert json.loads(patched.body) == {
        "appointment_lock": False,
        "exchange": {"verify_tls": False},
        "options": {"block_subject": "Busy"},
        "subject_template": None,
    }

    server.answers["PATCH"] = (412, {"message": "the integration is at version 4, not 3"})
    moved = calsync("--api", server.url, "-i", "bank-1", "integrations", "set", "auto_confirm=true")
    assert moved.exit_code == 4
    assert "changed meanwhile" in moved.stderr and "run the command again" in moved.stderr


def test_set_without_an_etag_from_the_api_changes_nothing(server: Server) -> None:
    answer = calsync("--api", server.url, "-i", "bank-1", "integrations", "set", "auto_confirm=true")
    assert answer.exit_code == 1
    assert "gave no ETag" in answer.stderr
    assert [r.method for r in server.received] == ["GET"]


def test_set_refuses_what_is_not_key_equals_value(server: Server) -> None:
    answer = calsync("--api", server.url, "-i", "bank-1", "integrations", "set", "auto_confirm")
    assert answer.exit_code == 2
    assert "is not KEY=VALUE" in answer.stderr
    assert server.received == []
