"""AWS adapters: the two SQS queues (one codec each), EventBridge events, Secrets Manager."""
