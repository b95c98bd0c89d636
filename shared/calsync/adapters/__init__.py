"""Adapters at the edges: JRNI (requests), Exchange (exchangelib), DynamoDB (PynamoDB), SQS, Secrets Manager.

Vendor errors are translated into the domain's errors here and nowhere else.
"""
