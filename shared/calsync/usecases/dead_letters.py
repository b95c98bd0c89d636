"""The operator's dead letters: the messages calsync gave up on, listed per integration and replayed once the cause
is fixed (access granted to a mailbox, a credential corrected).

The list is the integration's records (written when calsync dead-lettered a message: its reason, what it was about,
when, after how many attempts), completed by what the dead-letter queues themselves hold for it: a message the
queue's redrive moved there after repeated crashes has no record, and is recorded the first time it is seen. A
replay moves the messages back to their source queues; the functions then process them as any other message, and
the status follows.
"""

from __future__ import annotations

from typing import Any

from calsync.domain import InvalidInputError, NotFoundError, PermanentError, validation
from calsync.domain.dead_letters import DeadLetter
from calsync.ports import DeadLetterQueues, DeadLetterStore
from calsync.usecases.admin import AdminDeps, find_integration

# The most ids one replay names (the admin function answers within API Gateway's 29 s).
MAX_REPLAY_IDS = 100


def _parts(deps: AdminDeps) -> tuple[DeadLetterStore, DeadLetterQueues]:
    if deps.dead_letters is None or deps.dead_letter_queues is None:
        raise PermanentError(
            "this deployment has no dead-letter table or queues configured for the admin function: deploy "
            "template.yaml as it is (DEAD_LETTERS_TABLE and the *_DLQ_URL variables)"
        )
    return deps.dead_letters, deps.dead_letter_queues


def dead_letters(deps: AdminDeps, integration_id: str) -> list[DeadLetter]:
    """The integration's dead letters, newest first: recorded ones, and any found only in the queues (recorded now)."""
    integration = find_integration(deps.integrations, integration_id)
    store, queues = _parts(deps)
    letters = {letter.id: letter for letter in store.letters(integration.id)}
    for letter in queues.held(integration.id):
        if letter.id not in letters:
            store.record(letter)
            letters[letter.id] = letter
    return sorted(
        letters.values(), key=lambda letter: (letter.at is not None, letter.at, letter.id), reverse=True
    )


def replay(deps: AdminDeps, integration_id: str, ids: list[str] | None) -> dict[str, Any]:
    """Move the integration's dead letters (``ids``; None: all of them) back to their queues, to be processed again.

    An id that is not one of the integration's dead letters is refused (NotFoundError) and nothing is moved; a letter
    that is listed but not in its queue at this moment (another request is reading it, or SQS dropped it after 14
    days) is reported in ``not_replayed``."""
    integration = find_integration(deps.integrations, integration_id)
    store, queues = _parts(deps)
    recorded = {letter.id: letter for letter in store.letters(integration.id)}
    wanted: list[str] | None = None
    if ids is not None:
        wanted = list(dict.fromkeys(validation.dead_letter_id(i) for i in ids))
        if not wanted:
            raise InvalidInputError(
                "ids is empty: name the dead letters to replay, or leave ids out to replay all"
            )
        if len(wanted) > MAX_REPLAY_IDS:
            raise InvalidInputError(f"{len(wanted)} ids: replay at most {MAX_REPLAY_IDS} at once")
        unknown = [i for i in wanted if i not in recorded]
        if unknown:  # perhaps moved there by redrive and never listed: look in the queues
            recorded.update({letter.id: letter for letter in queues.held(integration.id)})
            unknown = [i for i in unknown if i not in recorded]
        if unknown:
            raise NotFoundError(
                f"integration {integration.id!r} has no dead letter {', '.join(unknown)}: list them with GET "
                f"/admin/integrations/{integration.id}/dead-letters"
            )
    outcome = queues.replay(integration.id, wanted)
    moved_ids = [letter.id for letter in outcome.moved]
    store.forget(integration.id, moved_ids)
    expected = wanted if wanted is not None else list(recorded)
    why = (
        f"not replayed: {outcome.stopped}; it is still in its dead-letter queue, replay it again"
        if outcome.stopped
        else "not in its dead-letter queue at this moment (another request may be reading it, or SQS dropped it "
        "after 14 days): list the dead letters again and replay it if it is still there"
    )
    return {
        "replayed": len(moved_ids),
        "ids": moved_ids,
        "not_replayed": [{"id": i, "reason": why} for i in expected if i not in set(moved_ids)],
    }


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as the admin API shows it."""
    return {
        "id": letter.id,
        "queue": letter.queue.value,
        "about": dict(letter.about),
        "reason": letter.reason,
        "at": letter.at.isoformat() if letter.at else None,
        "attempts": letter.attempts,
    }
