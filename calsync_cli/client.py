"""Talking to the admin API: the base URL (given, or the stack's ``ApiUrl`` output), SigV4 signing through botocore,
and every failure turned into an ``ApiError`` with an exit code, what is wrong and what to do."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

# Exit codes scripts can rely on (2 is click's and typer's own for a usage error).
OK = 0
FAILED = (
    1  # the operation reported a failure: a failed check, a bad row, a run ending in error, a refused input
)
USAGE = 2
NOT_FOUND = 3
CONFLICT = 4  # 409, 412, 428: something else holds or changed what this command wanted to change
UNREACHABLE = 5  # no answer, a timeout, a 5xx, or the stack's outputs could not be read

# Headers the signature covers besides ``host`` and the ``x-amz-*`` ones botocore adds: what the API reads.
_SIGNED = ("content-type", "if-match", "idempotency-key")


class ApiError(Exception):
    """A request that did not do what was asked: ``message`` says what is wrong, ``fix`` what to do."""

    def __init__(
        self, exit_code: int, message: str, fix: str, *, status: int | None = None, body: Any = None
    ) -> None:
        super().__init__(message)
        self.exit_code, self.message, self.fix, self.status, self.body = exit_code, message, fix, status, body


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class SigV4Signer:
    """Signs requests for API Gateway (service ``execute-api``) with the credentials of an AWS CLI profile."""

    def __init__(self, credentials: Any, region: str) -> None:
        self.credentials, self.region = credentials, region

    @classmethod
    def from_profile(cls, profile: str | None, region: str | None) -> SigV4Signer:
        """Credentials and region found as the AWS CLI finds them (``--profile``, ``AWS_PROFILE``, the environment,
        the config files, instance roles); ``AWS_REGION`` before ``AWS_DEFAULT_REGION``, as the AWS CLI reads them."""
        session = _session(profile, region)
        credentials = session.get_credentials()
        if credentials is None:
            raise ApiError(
                USAGE,
                "no AWS credentials found to sign the request",
                "give --profile NAME (or set AWS_PROFILE), or configure credentials as for the AWS CLI "
                "(aws configure)",
            )
        if not session.region_name:
            raise ApiError(
                USAGE, "no AWS region to sign the request for", "give --region (or set AWS_REGION)"
            )
        return cls(credentials.get_frozen_credentials(), session.region_name)

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """The headers to add to the request: ``Authorization``, ``X-Amz-Date`` (and the session token)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        covered = {name: value for name, value in headers.items() if name.lower() in _SIGNED}
        request = AWSRequest(method=method, url=url, data=body or b"", headers=covered)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(request)
        return {name: value for name, value in request.headers.items() if name.lower() not in _SIGNED}


def _session(profile: str | None, region: str | None) -> Any:
    import boto3
    import botocore.exceptions

    try:
        return boto3.Session(profile_name=profile, region_name=region or os.environ.get("AWS_REGION") or None)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ApiError(
            USAGE, str(exc), "give a profile from ~/.aws/config (aws configure list-profiles)"
        ) from exc


def stack_api_url(stack: str, profile: str | None, region: str | None) -> str:
    """The ``ApiUrl`` output of a deployed calsync stack, read with CloudFormation's DescribeStacks."""
    import botocore.exceptions

    try:
        answer = _session(profile, region).client("cloudformation").describe_stacks(StackName=stack)
    except botocore.exceptions.NoRegionError as exc:
        raise ApiError(
            USAGE, "no AWS region to look the stack up in", "give --region (or set AWS_REGION)"
        ) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise ApiError(
            USAGE,
            "no AWS credentials found",
            "give --profile NAME (or set AWS_PROFILE), or run aws configure",
        ) from exc
    except botocore.exceptions.ClientError as exc:
        raise ApiError(
            UNREACHABLE,
            f"cannot read the stack {stack!r}: {exc.response.get('Error', {}).get('Message', exc)}",
            "check the stack's name (aws cloudformation list-stacks), the region (--region) and the profile "
            "(--profile)",
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise ApiError(
            UNREACHABLE, f"cannot reach CloudFormation: {exc}", "check the network and the region"
        ) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for s in answer["Stacks"] for o in s.get("Outputs", [])}
    if "ApiUrl" not in outputs:
        raise ApiError(
            UNREACHABLE,
            f"the stack {stack!r} has no ApiUrl output",
            "give the name of a calsync stack (deployed from template.yaml), or the API's URL with --api",
        )
    return str(outputs["ApiUrl"])


class Api:
    """The admin API at ``base_url`` (e.g. ``https://abc.execute-api.eu-west-2.amazonaws.com/v1``)."""

    def __init__(self, base_url: str, *, signer: SigV4Signer | None = None, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ApiError(
                USAGE, f"{base_url!r} is not a URL", "give the API's URL, e.g. --api http://127.0.0.1:8087"
            )
        self.base_url = base_url.rstrip("/")
        self.signer, self.timeout = signer, timeout
        self.http = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        text: str | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        ok: tuple[int, ...] = (),
    ) -> Answer:
        """One request; a status of 400 or more (other than those in ``ok``) raises ``ApiError``."""
        data: bytes | None = None
        sent = dict(headers or {})
        if text is not None:
            data, sent["Content-Type"] = text.encode(), content_type
        elif body is not None:
            data, sent["Content-Type"] = json.dumps(body).encode(), content_type
        prepared = self.http.prepare_request(
            requests.Request(method, self.base_url + path, data=data, headers=sent, params=params or None)
        )
        if self.signer is not None:
            prepared.headers.update(self.signer.headers(method, str(prepared.url), sent, data))
        try:
            response = self.http.send(prepared, timeout=self.timeout)
        except requests.Timeout as exc:
            raise ApiError(
                UNREACHABLE,
                f"the API at {self.base_url} did not answer {method} {path} within {self.timeout:g} s",
                "try again; give a longer --timeout if the API is slow",
            ) from exc
        except requests.RequestException as exc:
            raise ApiError(
                UNREACHABLE,
                f"cannot reach the API at {self.base_url}: {_reason(exc)}",
                "check the URL (--api, CALSYNC_API) or the stack (--stack), and that the stack is running",
            ) from exc
        answer = Answer(response.status_code, _body(response), response.headers)
        if response.status_code >= 400 and response.status_code not in ok:
            raise refused(method, path, answer)
        return answer


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    return "connection refused" if "refused" in text.lower() else text


def _body(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _invalid(body: Any) -> str | None:
    """The request validation's answer (``{"detail": [{"loc": [...], "type", "msg"?}]}``) in words."""
    if not isinstance(body, dict) or not isinstance(body.get("detail"), list):
        return None
    said = []
    for problem in body["detail"]:
        if isinstance(problem, dict):
            where = ".".join(str(part) for part in problem.get("loc", []) if part != "body") or "the body"
            said.append(f"{where}: {problem.get('msg') or problem.get('type')}")
    return "the API refused the input: " + "; ".join(said) if said else None


def _template_problems(body: Any) -> str | None:
    """A refused template's problems (``errors`` of the preview, or ``template`` and ``detail``), each with its line
    and column and the line with a caret, as the API gives them."""
    if not isinstance(body, dict) or not isinstance(body.get("template"), str):
        return None
    errors = body.get("errors")
    rows = errors if isinstance(errors, list) else [body]
    said = [
        f"{row.get('template')} template: {row.get('detail')}"
        for row in rows
        if isinstance(row, dict) and isinstance(row.get("detail"), str)
    ]
    return "\n".join(said) or None


def refused(method: str, path: str, answer: Answer) -> ApiError:
    """The error, exit code and what to do for an answer of 400 or more."""
    body = answer.body
    said = body.get("message") if isinstance(body, dict) else None
    message = str(said or _invalid(body) or body or f"{method} {path} answered {answer.status}")
    if template_problems := _template_problems(body):
        message = f"{message}\n{template_problems}"
    status = answer.status
    if status == 404:
        return ApiError(
            NOT_FOUND,
            message,
            "check the id (calsync integrations list, calsync mappings list)",
            status=status,
            body=body,
        )
    if status == 412:
        return ApiError(
            CONFLICT,
            f"{message}: the integration changed meanwhile",
            "run the command again (it reads the integration afresh)",
            status=status,
            body=body,
        )
    if status in (409, 428):
        return ApiError(
            CONFLICT,
            message,
            "look at what holds it (calsync status), wait for it to finish, then run again",
            status=status,
            body=body,
        )
    if status in (401, 403):
        return ApiError(
            FAILED,
            f"the API refused the request ({status}): {message}",
            "sign with the credentials of a user or role allowed execute-api:Invoke on this API "
            "(--stack or --sign, --profile); a 403 'Missing Authentication Token' is also a wrong URL or path",
            status=status,
            body=body,
        )
    if status >= 500:
        return ApiError(
            UNREACHABLE,
            f"the API failed ({status}): {message}",
            "try again shortly; if it persists, read the admin function's logs (CloudWatch)",
            status=status,
            body=body,
        )
    return ApiError(FAILED, message, "correct the input and run again", status=status, body=body)
