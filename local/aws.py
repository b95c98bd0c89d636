"""The AWS resources of ``template.yaml`` (tables, queues, the event bus, function environment) created on moto.

Everything here is read off the template, so the local stack's schema cannot drift from the deployed one: the table
keys, the queues' FIFO and redrive settings, and the environment variables the functions are given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
ACCOUNT_ID = "123456789012"  # moto's default account


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """YAML with CloudFormation's short tags (``!Ref``, ``!Sub``, ``!GetAtt`` …) kept as ``{"Fn::…": value}``."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _tagged)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data, short tags expanded to their long forms."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CloudFormationLoader)  # a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return data


@dataclass
class Resources:
    """What was created, by logical id: table names, queue URLs and ARNs."""

    parameters: dict[str, str]
    region: str
    tables: dict[str, str] = field(default_factory=dict)  # logical id → table name
    queue_urls: dict[str, str] = field(default_factory=dict)  # logical id → queue URL
    queue_arns: dict[str, str] = field(default_factory=dict)
    queue_names: dict[str, str] = field(default_factory=dict)
    event_buses: dict[str, str] = field(default_factory=dict)  # logical id → bus name
    event_bus_arns: dict[str, str] = field(default_factory=dict)

    def ref(self, logical_id: str) -> str:
        """What ``!Ref`` gives for a resource or parameter (a table's name, a queue's URL)."""
        if logical_id in self.parameters:
            return self.parameters[logical_id]
        if logical_id in self.tables:
            return self.tables[logical_id]
        if logical_id in self.queue_urls:
            return self.queue_urls[logical_id]
        if logical_id in self.event_buses:
            return self.event_buses[logical_id]
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        raise KeyError(f"the local stack cannot resolve !Ref {logical_id}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn" and logical_id in self.queue_arns:
            return self.queue_arns[logical_id]
        if attribute == "QueueName" and logical_id in self.queue_names:
            return self.queue_names[logical_id]
        if logical_id in self.event_buses and attribute in ("Name", "Arn"):
            return self.event_buses[logical_id] if attribute == "Name" else self.event_bus_arns[logical_id]
        if attribute == "Arn" and logical_id in self.tables:
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{self.tables[logical_id]}"
        raise KeyError(f"the local stack cannot resolve !GetAtt {logical_id}.{attribute}")

    def resolve(self, value: Any) -> Any:
        """A template value with ``Ref`` / ``Fn::Sub`` / ``Fn::GetAtt`` replaced by what was created."""
        if isinstance(value, dict) and len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Ref":
                return self.ref(inner)
            if key == "Fn::GetAtt":
                return self.get_att(inner[0], inner[1])
            if key == "Fn::Sub":
                return self._sub(inner)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _sub(self, inner: Any) -> str:
        text, extra = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(self.resolve(extra[name]))
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", one, text)


def _parameters(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    values.update(overrides)
    return values


def _of_type(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res.get("Type") == kind}


def _dead_letter_targets_first(queues: dict[str, dict[str, Any]]) -> list[str]:
    """Queue logical ids ordered so that a dead-letter queue exists before the queue that redrives to it."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        target = queues[name].get("Properties", {}).get("RedrivePolicy", {}).get("deadLetterTargetArn")
        if isinstance(target, dict) and "Fn::GetAtt" in target and target["Fn::GetAtt"][0] in queues:
            visit(target["Fn::GetAtt"][0])
        ordered.append(name)

    for name in queues:
        visit(name)
    return ordered


# SQS queue attributes the template may set, as CreateQueue names them (all strings).
_QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
)


def _attribute(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def create_resources(
    session: Any, template: Mapping[str, Any] | None = None, parameters: Mapping[str, str] | None = None
) -> Resources:
    """Create the template's DynamoDB tables, SQS queues and EventBridge buses with ``session`` (a boto3 Session
    pointed at moto). The streaming task's ECS resources are not created: locally it runs as a process."""
    template = template if template is not None else load_template()
    region = session.region_name
    created = Resources(_parameters(template, parameters or {}), region)
    dynamodb = session.client("dynamodb")
    for name, resource in _of_type(template, "AWS::DynamoDB::Table").items():
        props = created.resolve(resource["Properties"])
        request: dict[str, Any] = {
            "TableName": props["TableName"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        for index in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if index in props:
                request[index] = props[index]
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        dynamodb.create_table(**request)
        created.tables[name] = props["TableName"]
    sqs = session.client("sqs")
    queues = _of_type(template, "AWS::SQS::Queue")
    for name in _dead_letter_targets_first(queues):
        props = created.resolve(queues[name].get("Properties", {}))
        attributes = {key: _attribute(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        queue_name = props.get("QueueName") or f"{created.parameters.get('NamePrefix', 'local')}-{name}"
        url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        created.queue_urls[name], created.queue_arns[name], created.queue_names[name] = url, arn, queue_name
    buses = _of_type(template, "AWS::Events::EventBus")
    if buses:
        events = session.client("events")
        for name, resource in buses.items():
            bus_name = created.resolve(resource["Properties"])["Name"]
            created.event_buses[name] = bus_name
            created.event_bus_arns[name] = events.create_event_bus(Name=bus_name)["EventBusArn"]
    return created


def function_environment(template: Mapping[str, Any], resources: Resources) -> dict[str, str]:
    """The environment variables of every function in the template (Globals, then each function's own), resolved.

    The local stack runs all the functions in one process, so it gives them the union; they agree on shared names.
    """
    env: dict[str, str] = {}
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    env.update({k: str(resources.resolve(v)) for k, v in globals_env.items()})
    for resource in _of_type(template, "AWS::Serverless::Function").values():
        own = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        env.update({k: str(resources.resolve(v)) for k, v in own.items()})
    return env


def event_source_queue(template: Mapping[str, Any], function: str) -> tuple[str, int]:
    """The logical id of the SQS queue feeding ``function`` and its batch size, as the template declares them."""
    events = template["Resources"][function]["Properties"].get("Events", {})
    for event in events.values():
        if event.get("Type") == "SQS":
            queue = event["Properties"]["Queue"]
            logical_id = (
                queue["Fn::GetAtt"][0] if isinstance(queue, dict) and "Fn::GetAtt" in queue else str(queue)
            )
            return logical_id, int(event["Properties"].get("BatchSize", 10))
    raise KeyError(f"{function} has no SQS event source in the template")


def task_environment(
    template: Mapping[str, Any], resources: Resources, task: str = "StreamingTaskDefinition"
) -> dict[str, str]:
    """The environment of the (first) container of an ECS task definition in the template, resolved.

    The task definition itself is only created in AWS (condition ``RunStreamingTask``); locally its container runs as
    a process, with exactly these variables."""
    containers = template["Resources"][task]["Properties"]["ContainerDefinitions"]
    return {
        str(entry["Name"]): str(resources.resolve(entry["Value"]))
        for entry in containers[0].get("Environment", [])
    }
