"""DynamoDB (PynamoDB) adapters of the state ports; table names and endpoints come in through the constructors."""

from calsync.adapters.dynamo.models import TableSettings
from calsync.adapters.dynamo.runs import DynamoRunStore
from calsync.adapters.dynamo.stores import DynamoIntegrationStore, DynamoLinkStore, DynamoMappingStore
from calsync.adapters.dynamo.sync_state import (
    DynamoBlockLinkStore,
    DynamoCursorStore,
    DynamoStreamingStateStore,
)
from calsync.domain.inbound import MailboxStreamState, TaskHeartbeat

__all__ = [
    "DynamoBlockLinkStore",
    "DynamoCursorStore",
    "DynamoIntegrationStore",
    "DynamoLinkStore",
    "DynamoMappingStore",
    "DynamoRunStore",
    "DynamoStreamingStateStore",
    "MailboxStreamState",
    "TableSettings",
    "TaskHeartbeat",
]
