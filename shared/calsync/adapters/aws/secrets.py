"""Secrets Manager through Powertools parameters, cached: credentials never live in DynamoDB or plain variables."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.exceptions import ClientError

from calsync.domain import PermanentError, RetryableError

CACHE_SECONDS = 300
# Errors that will not go away by themselves.
_PERMANENT = (
    "ResourceNotFoundException",
    "AccessDeniedException",
    "DecryptionFailure",
    "InvalidRequestException",
)


class SecretsManagerStore:
    """``SecretStore``: JSON secrets by name, cached for five minutes so a rotation is picked up soon enough."""

    def __init__(self, boto3_client: Any = None, prefix: str = "") -> None:
        self.provider = SecretsProvider(boto3_client=boto3_client)
        self.prefix = prefix

    def get(self, name: str) -> dict[str, str]:
        full = name if not self.prefix or name.startswith(self.prefix) else f"{self.prefix}{name}"
        try:
            value = self.provider.get(full, max_age=CACHE_SECONDS, transform="json")
        except TransformParameterError as exc:
            raise PermanentError(f"secret {full!r} is not a JSON object") from exc
        except GetParameterError as exc:
            cause = exc.__cause__
            code = cause.response.get("Error", {}).get("Code", "") if isinstance(cause, ClientError) else ""
            if code in _PERMANENT or any(c in str(exc) for c in _PERMANENT):
                raise PermanentError(
                    f"secret {full!r} cannot be read ({code or exc}): create it or grant access"
                ) from exc
            raise RetryableError(f"secret {full!r} could not be read now: {exc}") from exc
        if not isinstance(value, dict):
            raise PermanentError(f"secret {full!r} is not a JSON object")
        return {str(k): str(v) for k, v in value.items()}
