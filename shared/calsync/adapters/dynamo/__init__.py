"""DynamoDB (PynamoDB) adapters of the state ports; table names and endpoints come in through the constructors."""

from calsync.adapters.dynamo.models import TableSettings
from calsync.adapters.dynamo.stores import DynamoIntegrationStore, DynamoLinkStore, DynamoMappingStore

__all__ = ["DynamoIntegrationStore", "DynamoLinkStore", "DynamoMappingStore", "TableSettings"]
