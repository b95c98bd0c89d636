"""template.yaml keeps the promises the design makes: least privilege, no lost messages, recoverable state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.aws import load_template, resources_of_type

TEMPLATE = load_template()
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")
QUEUES = resources_of_type(TEMPLATE, "AWS::SQS::Queue")
TABLES = resources_of_type(TEMPLATE, "AWS::DynamoDB::Table")
GLOBAL_FUNCTION = TEMPLATE["Globals"]["Function"]

# SAM policy templates whose expansions name their actions (none is a wildcard) and take a resource.
ALLOWED_POLICY_TEMPLATES = {"DynamoDBReadPolicy", "DynamoDBCrudPolicy", "SQSSendMessagePolicy", "SQSPollerPolicy",
                            "AWSSecretsManagerGetSecretValuePolicy"}  # fmt: skip


def function_property(function: dict[str, Any], name: str) -> Any:
    return function["Properties"].get(name, GLOBAL_FUNCTION.get(name))


def actions(node: Any) -> Iterator[str]:
    """Every IAM action named anywhere below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("Action", "NotAction"):
                yield from [value] if isinstance(value, str) else value
            else:
                yield from actions(value)
    elif isinstance(node, list):
        for item in node:
            yield from actions(item)


def test_no_policy_allows_a_wildcard_action() -> None:
    found = list(actions(TEMPLATE["Resources"]))
    assert found, "the walk found no action at all: the test would prove nothing"
    assert [action for action in found if "*" in action] == []


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_use_only_scoped_policy_templates_or_explicit_statements(name: str) -> None:
    for policy in FUNCTIONS[name]["Properties"].get("Policies", []):
        # A bare string would be a managed policy (e.g. AmazonDynamoDBFullAccess): far wider than needed.
        assert isinstance(policy, dict), f"{name}: managed policy {policy!r}"
        if "Statement" not in policy:
            (template_name,) = policy
            assert template_name in ALLOWED_POLICY_TEMPLATES, f"{name}: {template_name}"
            assert policy[template_name], f"{name}: {template_name} without a resource"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_secrets_are_readable_only_under_the_prefix(name: str) -> None:
    for policy in FUNCTIONS[name]["Properties"].get("Policies", []):
        if "AWSSecretsManagerGetSecretValuePolicy" in policy:
            arn = policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Fn::Sub"]
            assert arn.endswith(":secret:${NamePrefix}/*")


def sqs_events() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, function in FUNCTIONS.items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                yield name, event["Properties"]


def test_there_is_an_sqs_triggered_function() -> None:
    assert [name for name, _ in sqs_events()] == ["OutboundFunction"]


@pytest.mark.parametrize(("name", "event"), list(sqs_events()), ids=lambda v: v if isinstance(v, str) else "")
def test_a_queue_outlasts_six_runs_of_its_function_and_reports_partial_failures(name: str, event: dict[str, Any]) -> None:
    queue = QUEUES[event["Queue"]["Fn::GetAtt"][0]]["Properties"]
    # AWS's advice for SQS event sources: a message must stay invisible while retries of the batch can still run.
    assert 6 * function_property(FUNCTIONS[name], "Timeout") <= queue["VisibilityTimeout"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= event["BatchSize"] <= 10  # FIFO sources take at most 10


def dead_letter_targets() -> set[str]:
    return {q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            for q in QUEUES.values() if "RedrivePolicy" in q["Properties"]}  # fmt: skip


@pytest.mark.parametrize("name", sorted(set(QUEUES) - dead_letter_targets()))
def test_every_work_queue_has_a_matching_dead_letter_queue(name: str) -> None:
    properties = QUEUES[name]["Properties"]
    redrive = properties["RedrivePolicy"]
    dead_letter = QUEUES[redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]]["Properties"]
    assert 3 <= redrive["maxReceiveCount"] <= 20
    # A FIFO queue's dead letters must go to a FIFO queue; and they should outlive the source's messages.
    assert dead_letter.get("FifoQueue", False) == properties.get("FifoQueue", False)
    assert dead_letter["MessageRetentionPeriod"] > properties.get("MessageRetentionPeriod", 345600)


def test_the_outbound_queue_is_fifo_and_deduplicates_by_our_ids() -> None:
    properties = QUEUES["OutboundQueue"]["Properties"]
    assert properties["FifoQueue"] is True
    assert properties["ContentBasedDeduplication"] is False


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables_are_recoverable_encrypted_on_demand_and_kept(name: str) -> None:
    table = TABLES[name]
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_every_table_and_the_queue_reach_the_functions_by_environment() -> None:
    variables = GLOBAL_FUNCTION["Environment"]["Variables"]
    referenced = {value["Ref"] for value in variables.values() if isinstance(value, dict) and "Ref" in value}
    assert set(TABLES) | {"OutboundQueue"} <= referenced


def api_routes() -> dict[tuple[str, str], str]:
    """(method, path) -> the authorizer in force, the API's default applying where a route names none."""
    api = resources_of_type(TEMPLATE, "AWS::Serverless::Api")
    assert len(api) == 1
    default = next(iter(api.values()))["Properties"].get("Auth", {}).get("DefaultAuthorizer", "NONE")
    routes = {}
    for function in FUNCTIONS.values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                properties = event["Properties"]
                authorizer = properties.get("Auth", {}).get("Authorizer", default)
                routes[(properties["Method"].upper(), properties["Path"])] = authorizer
    return routes


def test_only_the_jrni_webhook_is_open_and_every_admin_route_needs_iam() -> None:
    routes = api_routes()
    # JRNI cannot sign requests with AWS credentials: the function authenticates it instead.
    assert routes.pop(("POST", "/webhooks/jrni/{integration_id}")) == "NONE"
    assert routes, "no admin route"
    for (_, path), authorizer in routes.items():
        assert path == "/admin" or path.startswith("/admin/")
        assert authorizer == "AWS_IAM", path


def test_functions_run_python_3_12_on_arm64_with_the_layer_built_for_it() -> None:
    assert (GLOBAL_FUNCTION["Runtime"], GLOBAL_FUNCTION["Architectures"]) == ("python3.12", ["arm64"])
    layer = TEMPLATE["Resources"]["CalsyncLayer"]
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE"} <= set(
        GLOBAL_FUNCTION["Environment"]["Variables"])
