"""AWS resources for tests (moto), built from template.yaml so that the tested schema is the deployed one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
REGION = "eu-west-1"


class _CloudFormationLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus CloudFormation's short tags (``!Ref``, ``!Sub``, ``!GetAtt``...)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml as plain data, intrinsic functions in their long form (``{"Ref": ...}``)."""
    with path.open() as stream:
        loaded: dict[str, Any] = yaml.load(stream, Loader=_CloudFormationLoader)
        return loaded


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def _name(value: Any, prefix: str) -> str:
    """A resource name from the template, with ``${NamePrefix}`` replaced; nothing else is expected in a name."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    resolved = text.replace("${NamePrefix}", prefix)
    if re.search(r"\$\{", resolved):
        raise ValueError(f"cannot resolve the name {text!r} outside CloudFormation")
    return str(resolved)


def create_tables(dynamodb: Any, prefix: str = "test") -> dict[str, str]:
    """Create every DynamoDB table of the template (key schema, indexes, billing) with ``dynamodb`` (a boto3
    client); returns logical id -> table name."""
    names = {}
    for logical_id, resource in resources_of_type(load_template(), "AWS::DynamoDB::Table").items():
        properties = resource["Properties"]
        name = _name(properties["TableName"], prefix)
        arguments: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        if "GlobalSecondaryIndexes" in properties:
            arguments["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        if arguments["BillingMode"] == "PROVISIONED":
            arguments["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
        dynamodb.create_table(**arguments)
        names[logical_id] = name
    return names


_QUEUE_ATTRIBUTES = ("FifoQueue", "ContentBasedDeduplication", "VisibilityTimeout", "MessageRetentionPeriod",
                     "DelaySeconds", "DeduplicationScope", "FifoThroughputLimit")  # fmt: skip


def create_queues(sqs: Any, prefix: str = "test") -> dict[str, str]:
    """Create every SQS queue of the template, dead-letter queues first, with their redrive policies, using
    ``sqs`` (a boto3 client); returns logical id -> queue URL."""
    queues = resources_of_type(load_template(), "AWS::SQS::Queue")
    urls: dict[str, str] = {}

    def create(logical_id: str) -> str:
        if logical_id in urls:
            return urls[logical_id]
        properties = queues[logical_id]["Properties"]
        attributes = {key: str(properties[key]).lower() if isinstance(properties[key], bool) else str(properties[key])
                      for key in _QUEUE_ATTRIBUTES if key in properties}  # fmt: skip
        redrive = properties.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            target_url = create(target)
            target_arn = sqs.get_queue_attributes(QueueUrl=target_url, AttributeNames=["QueueArn"])
            attributes["RedrivePolicy"] = json.dumps({
                "deadLetterTargetArn": target_arn["Attributes"]["QueueArn"],
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            })  # fmt: skip
        url = sqs.create_queue(QueueName=_name(properties["QueueName"], prefix), Attributes=attributes)["QueueUrl"]
        urls[logical_id] = url
        return str(url)

    for logical_id in queues:
        create(logical_id)
    return urls
