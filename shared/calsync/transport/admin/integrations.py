"""The admin API's integrations: list, create (idempotently), read one, change one (a JSON merge patch guarded by its
version), delete one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from calsync.domain import (
    ConflictError,
    Integration,
    InvalidInputError,
    RetryableError,
)
from calsync.transport.admin.answers import Refused, answers, body_text, json_answer, new_router, no_content
from calsync.transport.admin.models import (
    IntegrationIn,
    integration_body,
    integration_json,
    integration_of,
)
from calsync.transport.admin.schemas import IntegrationOut, IntegrationsOut
from calsync.usecases import admin
from calsync.usecases.admin import AdminDeps

# How long an Idempotency-Key is remembered: a client retrying within a day gets the first answer again.
IDEMPOTENCY_SECONDS = 24 * 3600
MAX_IDEMPOTENCY_KEY = 255
MERGE_PATCH = "application/merge-patch+json"
# A 422's bodies: a field that does not validate, or a template that cannot be used.
_INVALID = (
    "the integration is invalid: errors names each field (where) and what is wrong (message); or a template cannot "
    "be used: template names which, detail gives its line and column"
)
_ETAG: dict[str, OpenAPIResponseHeader] = {
    "ETag": {"description": 'the integration\'s version, e.g. "3": send it as If-Match to change it'}
}


def routes(deps: Callable[[], AdminDeps], idempotency: Callable[[], BasePersistenceLayer | None]) -> Router:
    """The integrations' routes; ``deps`` is called per request, ``idempotency`` gives where Idempotency-Keys are
    remembered (None: nowhere, and the header is refused)."""
    router = new_router()

    @router.get(
        "/admin/integrations",
        summary="List integrations",
        responses=answers(200, IntegrationsOut, "every integration, with the names of its secrets"),
    )
    def list_integrations() -> IntegrationsOut:
        return IntegrationsOut.model_validate(
            {"integrations": [integration_json(i) for i in admin.integrations(deps())]}
        )

    @router.post(
        "/admin/integrations",
        summary="Create an integration",
        description=(
            "Safe to retry: the same body with the same client-chosen `id`, or the same `Idempotency-Key`, gives "
            "the first answer again instead of a second integration."
        ),
        status_code=201,
        responses=answers(
            201,
            IntegrationOut,
            "created (or created before by the same request)",
            {
                400: "an endpoint or secret name this integration may not use, or an Idempotency-Key this "
                "deployment cannot keep",
                409: "the id is in use by another configuration, or the same Idempotency-Key is in flight",
                422: _INVALID + "; or the Idempotency-Key was used with another body",
            },
            headers=_ETAG,
        ),
    )
    def create_integration(
        body: IntegrationIn,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                description="any unique string (a UUID): a retry with the same key and body gets the same answer",
            ),
        ] = None,
    ) -> Response[IntegrationOut]:
        def create() -> Integration:
            services = deps()
            # Without an id, a new one; the answer names the secrets to create for it.
            integration = integration_of(body, body.id or uuid.uuid4().hex[:12], services.secrets_prefix)
            return admin.create_integration(services, integration)

        if idempotency_key is None:
            return _shown(201, create())
        return _once(idempotency(), idempotency_key, body, create, router.lambda_context)

    @router.get(
        "/admin/integrations/<integration_id>",
        summary="One integration, with its version (ETag)",
        responses=answers(200, IntegrationOut, "the integration", {404: None}, headers=_ETAG),
    )
    def get_integration(integration_id: Annotated[str, Path()]) -> Response[IntegrationOut]:
        return _shown(200, admin.find_integration(deps().integrations, integration_id))

    @router.patch(
        "/admin/integrations/<integration_id>",
        summary="Change an integration (a JSON merge patch of the creation body)",
        description=(
            "The body is a JSON merge patch (RFC 7386, `application/merge-patch+json` or `application/json`) of the "
            "body that creates the integration: the fields given replace the stored ones, objects merge, `null` "
            "puts a field back to its default. Checked as at creation. `If-Match` must carry the ETag of the "
            "version the change was made from."
        ),
        responses=answers(
            200,
            IntegrationOut,
            "the integration as changed, with its new version",
            {
                400: "the body is not a JSON object, the id would change, If-Match is not an ETag, or an endpoint "
                "or secret name this integration may not use",
                404: None,
                412: "the integration changed since the ETag given: read it again and redo the change",
                415: "the body is neither application/merge-patch+json nor application/json",
                422: _INVALID,
                428: None,
            },
            headers=_ETAG,
        ),
    )
    def patch_integration(
        integration_id: Annotated[str, Path()],
        if_match: Annotated[
            str | None,
            Header(alias="If-Match", description='the ETag of GET /admin/integrations/{id}, e.g. "3"'),
        ] = None,
    ) -> Response[IntegrationOut]:
        if if_match is None:
            raise Refused(
                428,
                f"If-Match is required: GET /admin/integrations/{integration_id}, then send its ETag as If-Match, "
                f"so that a change made meanwhile by someone else is not overwritten",
            )
        expected = _version_of(if_match)
        patch = _merge_patch_body(router)
        services = deps()
        current = admin.integration_at(services, integration_id, expected)
        if "id" in patch and patch["id"] != current.id:
            raise InvalidInputError(
                f"an integration's id cannot change (it names its webhook path and its secrets): create another "
                f"integration with the id {patch['id']!r} instead"
            )
        try:
            body = IntegrationIn.model_validate(merge_patch(integration_body(current), patch))
        except ValidationError as exc:
            raise RequestValidationError(
                [
                    {**e, "loc": ("body", *e["loc"])}
                    for e in exc.errors(include_url=False, include_context=False)
                ]
            ) from None
        changed = replace(
            integration_of(body, current.id, services.secrets_prefix),
            # What the creation body does not carry stays as it is.
            created_at=current.created_at,
            inbound_free_busy=current.inbound_free_busy,
            templates_changed_at=current.templates_changed_at,
            version=current.version,
        )
        if changed == current:
            return _shown(200, current)
        return _shown(200, admin.update_integration(services, changed, expected))

    @router.delete(
        "/admin/integrations/<integration_id>",
        summary="Delete an integration and everything calsync keeps for it",
        description=(
            "Removes its mappings, statuses, links, block links, sync positions, watch states and reconcile runs. "
            "What calsync wrote into Outlook and JRNI stays there: see the README (Changing, deleting and importing)."
        ),
        status_code=204,
        responses=answers(
            204,
            None,
            "deleted",
            {404: None, 409: "a reconcile run of the integration is under way: try when it ends"},
        ),
    )
    def delete_integration(integration_id: Annotated[str, Path()]) -> Response[None]:
        admin.delete_integration(deps(), integration_id)
        return no_content()

    return router


def _shown(status: int, integration: Integration) -> Response[IntegrationOut]:
    """The integration, with its version as the ETag."""
    return json_answer(
        status, IntegrationOut.model_validate(integration_json(integration)), etag=integration.version
    )


def _once(
    layer: BasePersistenceLayer | None,
    key: str,
    body: IntegrationIn,
    create: Callable[[], Integration],
    context: LambdaContext,
) -> Response[IntegrationOut]:
    """Create as ``create`` does, at most once per Idempotency-Key: Powertools' idempotency utility records the
    answer under the key (with the body it answered); the same key and body again get that answer, and create
    nothing."""
    if layer is None:
        raise InvalidInputError(
            "this deployment keeps no Idempotency-Keys (IDEMPOTENCY_TABLE is not set): send the request without "
            "the header, with an id of your own choosing (the same id and body again is answered the same)"
        )
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInputError(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters (a UUID)")
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="body",
        expires_after_seconds=IDEMPOTENCY_SECONDS,
    )
    # A create cut short by the function's timeout frees its key when the invocation would have ended.
    config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="request", persistence_store=layer, config=config)
    def create_integration(request: dict[str, Any]) -> dict[str, Any]:
        stored = create()
        return {"integration": integration_json(stored), "version": stored.version}

    try:
        answer: dict[str, Any] = create_integration(
            request={"key": key, "body": body.model_dump(mode="json")}
        )
    except IdempotencyValidationError:
        raise Refused(
            422,
            f"Idempotency-Key {key!r} was used in the last {IDEMPOTENCY_SECONDS // 3600} hours for another body: "
            f"send that body again to get its answer, or use a new key for a new integration",
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise ConflictError(
            f"a request with Idempotency-Key {key!r} is still being handled: try again in a few seconds"
        ) from None
    except IdempotencyPersistenceLayerError as exc:
        raise RetryableError(f"the record of Idempotency-Keys cannot be read or written: {exc}") from exc
    return json_answer(201, IntegrationOut.model_validate(answer["integration"]), etag=answer["version"])


def _version_of(if_match: str) -> int:
    """The version an If-Match header names: one ETag as GET gives it (``"3"``)."""
    text = if_match.strip()
    if len(text) < 3 or not (text.startswith('"') and text.endswith('"')) or not text[1:-1].isdigit():
        raise InvalidInputError(
            f"If-Match {if_match[:40]!r} is not an ETag of this API: send the ETag header of "
            f'GET /admin/integrations/{{id}} as it is, quotes included (e.g. "3")'
        )
    return int(text[1:-1])


def _merge_patch_body(router: Router) -> dict[str, Any]:
    """The request's body: a JSON object (a merge patch)."""
    event = router.current_event
    content_type = (event.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
    if content_type not in ("application/json", MERGE_PATCH):
        raise Refused(
            415, f"a body of {content_type} cannot be a merge patch: send {MERGE_PATCH} (or application/json)"
        )
    try:
        patch = json.loads(body_text(event))
    except ValueError as exc:
        raise InvalidInputError(
            f"the body is not JSON ({exc}): send a JSON object of the fields to change"
        ) from None
    if not isinstance(patch, dict):
        raise InvalidInputError(
            'a merge patch is a JSON object of the fields to change, e.g. {"name": "..."}'
        )
    return patch


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied as RFC 7386 says: an object merges key by key, ``null`` removes a key,
    anything else replaces what was there."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
