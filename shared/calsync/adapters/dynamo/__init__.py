"""DynamoDB (PynamoDB) adapters of the state ports; table names and endpoints come in through the constructors."""

from calsync.adapters.dynamo.inbound import (
    DynamoBlockLinkStore,
    DynamoCursorStore,
    DynamoStreamingStateStore,
    StreamMode,
)
from calsync.adapters.dynamo.models import TableSettings
from calsync.adapters.dynamo.stores import DynamoIntegrationStore, DynamoLinkStore, DynamoMappingStore
from calsync.domain.inbound import MailboxStreamState, TaskHeartbeat

__all__ = [
    "DynamoBlockLinkStore",
    "DynamoCursorStore",
    "DynamoIntegrationStore",
    "DynamoLinkStore",
    "DynamoMappingStore",
    "DynamoStreamingStateStore",
    "MailboxStreamState",
    "StreamMode",
    "TableSettings",
    "TaskHeartbeat",
]
