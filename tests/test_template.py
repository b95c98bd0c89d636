"""template.yaml keeps the promises the design makes: least privilege, no lost messages, recoverable state."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from calsync.ports import Metric
from tests.aws import REGION, create_in_moto, function_environment, load_template, resources_of_type

TEMPLATE = load_template()
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")
QUEUES = resources_of_type(TEMPLATE, "AWS::SQS::Queue")
TABLES = resources_of_type(TEMPLATE, "AWS::DynamoDB::Table")
GLOBAL_FUNCTION = TEMPLATE["Globals"]["Function"]

# SAM policy templates whose expansions name their actions (none is a wildcard) and take a resource.
ALLOWED_POLICY_TEMPLATES = {
    "DynamoDBReadPolicy",
    "DynamoDBCrudPolicy",
    "DynamoDBWritePolicy",  # put, update, batch write: what recording a dead letter needs, and no reads
    "SQSSendMessagePolicy",
    "SQSPollerPolicy",
    "AWSSecretsManagerGetSecretValuePolicy",
    "EventBridgePutEventsPolicy",
}
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${NamePrefix}/"
# Secrets Manager ARNs end in "-" and six random characters: <prefix><integration id>/<part>-AbCdEf.
SECRET_OF = {part: f"{SECRET_ARN}*/{part}-*" for part in ("jrni", "exchange", "webhook")}
# Which secrets each function reads: the webhook function only the webhooks' credentials, the others only JRNI's and
# Exchange's (an admin call reaching JRNI or Exchange; never a webhook secret).
SECRETS_READ = {
    "JrniWebhookFunction": {"webhook"},
    "OutboundFunction": {"jrni", "exchange"},
    "InboundFunction": {"jrni", "exchange"},
    "ReconcileFunction": {"jrni", "exchange"},
    "AdminFunction": {"jrni", "exchange"},
}


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


def secret_arns(node: Any) -> Iterator[str]:
    """Every Secrets Manager ARN (as its Fn::Sub text) named anywhere below ``node``."""
    if isinstance(node, dict):
        for value in node.values():
            yield from secret_arns(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_arns(item)
    elif isinstance(node, str) and ":secretsmanager:" in node:
        yield node


def test_every_function_is_listed_with_the_secrets_it_reads() -> None:
    assert set(SECRETS_READ) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(SECRETS_READ))
def test_each_function_reads_only_the_secrets_it_needs(name: str) -> None:
    arns = list(secret_arns(FUNCTIONS[name]["Properties"].get("Policies", [])))
    assert sorted(arns) == sorted(SECRET_OF[part] for part in SECRETS_READ[name])
    # None reads every secret under the prefix, as a function of one integration would then read another's parts.
    assert f"{SECRET_ARN}*" not in arns


def test_a_secret_pattern_matches_an_integration_s_own_part_and_no_other() -> None:
    # IAM's "*" matches any characters, "/" included, as fnmatch's does.
    def arn(name: str) -> str:
        return f"{SECRET_ARN}{name}-AbCdEf"

    assert fnmatch.fnmatchcase(arn("int-1/jrni"), SECRET_OF["jrni"])
    assert fnmatch.fnmatchcase(arn("int-1/webhook"), SECRET_OF["webhook"])
    assert not fnmatch.fnmatchcase(arn("int-1/jrni"), SECRET_OF["webhook"])
    assert not fnmatch.fnmatchcase(arn("int-1/exchange"), SECRET_OF["jrni"])
    assert not fnmatch.fnmatchcase(
        arn("int-1/jrni").replace("${NamePrefix}/", "other-stack/"), SECRET_OF["jrni"]
    )


def test_the_admin_function_answers_before_api_gateway_gives_up_and_after_its_own_deadline() -> None:
    from calsync.transport.admin import DEADLINE_SECONDS

    timeout = function_property(FUNCTIONS["AdminFunction"], "Timeout")
    assert DEADLINE_SECONDS + 3 <= timeout < 29


def sqs_events() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, function in FUNCTIONS.items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                yield name, event["Properties"]


def test_each_direction_and_reconciliation_has_its_sqs_triggered_function() -> None:
    assert sorted(name for name, _ in sqs_events()) == [
        "InboundFunction",
        "OutboundFunction",
        "ReconcileFunction",
    ]
    assert {name: event["Queue"] for name, event in sqs_events()} == {
        "OutboundFunction": {"Fn::GetAtt": ["OutboundQueue", "Arn"]},
        "InboundFunction": {"Fn::GetAtt": ["InboundQueue", "Arn"]},
        "ReconcileFunction": {"Fn::GetAtt": ["ReconcileQueue", "Arn"]},
    }


@pytest.mark.parametrize(("name", "event"), list(sqs_events()), ids=lambda v: v if isinstance(v, str) else "")
def test_a_queue_outlasts_six_runs_of_its_function_and_reports_partial_failures(
    name: str, event: dict[str, Any]
) -> None:
    queue = QUEUES[event["Queue"]["Fn::GetAtt"][0]]["Properties"]
    # AWS's advice for SQS event sources: a message must stay invisible while retries of the batch can still run.
    assert 6 * function_property(FUNCTIONS[name], "Timeout") <= queue["VisibilityTimeout"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= event["BatchSize"] <= 10  # FIFO sources take at most 10


@pytest.mark.parametrize(("name", "event"), list(sqs_events()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_function_that_talks_to_exchange_runs_at_most_exchange_concurrency_at_once(
    name: str, event: dict[str, Any]
) -> None:
    # A backfill or a mass reschedule queues up instead of causing ErrorServerBusy storms; one setting for all three.
    assert event["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ExchangeConcurrency"}}
    parameter = TEMPLATE["Parameters"]["ExchangeConcurrency"]
    # Lambda accepts 2 to 1000; Microsoft advises at most 10 concurrent EWS requests per account.
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (
        "Number",
        10,
        2,
        1000,
    )
    assert "EWSMaxConcurrency" in parameter["Description"]


def dead_letter_targets() -> set[str]:
    return {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in QUEUES.values()
        if "RedrivePolicy" in q["Properties"]
    }


@pytest.mark.parametrize("name", sorted(set(QUEUES) - dead_letter_targets()))
def test_every_work_queue_has_a_matching_dead_letter_queue(name: str) -> None:
    properties = QUEUES[name]["Properties"]
    redrive = properties["RedrivePolicy"]
    dead_letter = QUEUES[redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]]["Properties"]
    assert 3 <= redrive["maxReceiveCount"] <= 20
    # A FIFO queue's dead letters must go to a FIFO queue; and they should outlive the source's messages.
    assert dead_letter.get("FifoQueue", False) == properties.get("FifoQueue", False)
    assert dead_letter["MessageRetentionPeriod"] > properties.get("MessageRetentionPeriod", 345600)


def test_the_work_queues_are_the_outbound_inbound_and_reconcile_queues() -> None:
    assert sorted(set(QUEUES) - dead_letter_targets()) == ["InboundQueue", "OutboundQueue", "ReconcileQueue"]


ALARMS = resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm")


@pytest.mark.parametrize("name", sorted(dead_letter_targets()))
def test_every_dead_letter_queue_alarms_and_both_its_queues_are_outputs(name: str) -> None:
    watched = [
        alarm_name
        for alarm_name, alarm in ALARMS.items()
        if alarm["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [name, "QueueName"]}}]
    ]
    assert len(watched) == 1, name
    alarm = ALARMS[watched[0]]["Properties"]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    (source,) = [
        q
        for q, queue in QUEUES.items()
        if queue["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn")
        == {"Fn::GetAtt": [name, "Arn"]}
    ]
    outputs = {o["Value"].get("Ref") for o in TEMPLATE["Outputs"].values() if isinstance(o["Value"], dict)}
    assert {source, name} <= outputs


def test_the_function_errors_alarm_counts_every_function() -> None:
    metrics = TEMPLATE["Resources"]["FunctionErrorsAlarm"]["Properties"]["Metrics"]
    counted = {
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]: m["Id"]
        for m in metrics
        if "MetricStat" in m
    }
    assert set(counted) == set(FUNCTIONS)
    (expression,) = [m["Expression"] for m in metrics if "Expression" in m]
    assert sorted(expression.split(" + ")) == sorted(counted.values())


@pytest.mark.parametrize("name", ["OutboundQueue", "InboundQueue", "ReconcileQueue"])
def test_the_work_queues_are_fifo_and_deduplicate_by_our_ids(name: str) -> None:
    properties = QUEUES[name]["Properties"]
    assert properties["FifoQueue"] is True
    # Every inbound message about one mailbox reads the same: content-based deduplication would drop a second
    # change made within five minutes of the first. The one exception is the reconcile queue: EventBridge Scheduler
    # cannot set a deduplication id, and a FIFO target without one needs content-based deduplication. Our own
    # senders (the admin function, the dispatcher step) pass explicit ids there, which take precedence.
    assert properties["ContentBasedDeduplication"] is (name == "ReconcileQueue")
    # Ordering and deduplication per group (one booking, one mailbox), so one busy group does not slow the rest.
    assert (properties["DeduplicationScope"], properties["FifoThroughputLimit"]) == (
        "messageGroup",
        "perMessageGroupId",
    )


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables_are_recoverable_encrypted_on_demand_and_kept(name: str) -> None:
    table = TABLES[name]
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_the_runs_table_is_keyed_pk_sk_and_expires_old_runs() -> None:
    properties = TABLES["RunsTable"]["Properties"]
    assert properties["TableName"] == {"Fn::Sub": "${NamePrefix}-runs"}
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert properties["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_every_table_and_the_queue_reach_the_functions_by_environment() -> None:
    variables = GLOBAL_FUNCTION["Environment"]["Variables"]
    referenced = {value["Ref"] for value in variables.values() if isinstance(value, dict) and "Ref" in value}
    # Only the admin function keeps Idempotency-Keys: the table is named to it alone.
    assert set(TABLES) - {"IdempotencyTable"} | {"OutboundQueue"} <= referenced
    assert "IdempotencyTable" not in referenced
    assert variables["RUNS_TABLE"] == {"Ref": "RunsTable"}


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
        GLOBAL_FUNCTION["Environment"]["Variables"]
    )


# ---------------------------------------------------------------- inbound


def policies_on(function: str, logical_id: str) -> list[str]:
    """The policy templates ``function`` holds on one table, queue or bus (by its logical id)."""
    found = []
    for policy in FUNCTIONS[function]["Properties"].get("Policies", []):
        for template_name, argument in policy.items():
            if logical_id in str(argument):
                found.append(template_name)
    return found


def test_the_inbound_function_reads_its_queue_and_may_dead_letter_but_never_writes_outbound() -> None:
    assert policies_on("InboundFunction", "InboundQueue") == ["SQSPollerPolicy"]
    assert policies_on("InboundFunction", "InboundDeadLetterQueue") == ["SQSSendMessagePolicy"]
    assert policies_on("InboundFunction", "OutboundQueue") == []
    (event,) = [e for n, e in sqs_events() if n == "InboundFunction"]
    assert event["Queue"] == {"Fn::GetAtt": ["InboundQueue", "Arn"]}


def test_only_the_inbound_and_reconcile_functions_may_publish_and_only_to_the_stacks_bus() -> None:
    publishers = {name for name in FUNCTIONS if policies_on(name, "EventBus")}
    # Both apply Outlook changes to JRNI, which may confirm reservations.
    assert publishers == {"InboundFunction", "ReconcileFunction"}
    for name in publishers:
        assert policies_on(name, "EventBus") == ["EventBridgePutEventsPolicy"], name
    assert [
        a for a in actions(TEMPLATE["Resources"]) if a.startswith("events:")
    ] == []  # no broader statement
    bus = TEMPLATE["Resources"]["EventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    assert bus["Properties"]["Name"] == {"Fn::Sub": "${NamePrefix}-events"}
    assert {"EventBusName", "EventBusArn"} <= set(TEMPLATE["Outputs"])


def test_the_inbound_function_is_told_where_its_queues_tables_and_bus_are() -> None:
    variables = FUNCTIONS["InboundFunction"]["Properties"]["Environment"]["Variables"]
    assert variables == {
        "INBOUND_QUEUE_URL": {"Ref": "InboundQueue"},
        "INBOUND_DLQ_URL": {"Ref": "InboundDeadLetterQueue"},
        "EVENT_BUS_NAME": {"Fn::GetAtt": ["EventBus", "Name"]},
    }
    shared = GLOBAL_FUNCTION["Environment"]["Variables"]
    assert (shared["BLOCK_LINKS_TABLE"], shared["CURSORS_TABLE"]) == (
        {"Ref": "BlockLinksTable"},
        {"Ref": "CursorsTable"},
    )


def test_outbound_may_read_block_links_to_recognise_its_own_blocks_but_not_change_them() -> None:
    assert policies_on("OutboundFunction", "BlockLinksTable") == ["DynamoDBReadPolicy"]
    assert policies_on("InboundFunction", "BlockLinksTable") == ["DynamoDBCrudPolicy"]


def test_the_functions_that_talk_to_exchange_join_the_vpc_when_one_is_given() -> None:
    # The admin function too: its connection test and automap open mailboxes.
    for name in ("OutboundFunction", "InboundFunction", "ReconcileFunction", "AdminFunction"):
        vpc = FUNCTIONS[name]["Properties"]["VpcConfig"]["Fn::If"]
        assert vpc[0] == "HasVpc" and vpc[2] == {"Ref": "AWS::NoValue"}, name


# ---------------------------------------------------------------- reconciliation


def test_the_reconcile_function_reads_its_queue_requeues_per_mapping_dead_letters_and_may_queue_outbound() -> (
    None
):
    assert policies_on("ReconcileFunction", "ReconcileQueue") == ["SQSPollerPolicy", "SQSSendMessagePolicy"]
    assert policies_on("ReconcileFunction", "ReconcileDeadLetterQueue") == ["SQSSendMessagePolicy"]
    # A booking JRNI changed behind a missed webhook goes to the outbound function; never the other way round.
    assert policies_on("ReconcileFunction", "OutboundQueue") == ["SQSSendMessagePolicy"]
    assert policies_on("OutboundFunction", "ReconcileQueue") == []
    assert policies_on("ReconcileFunction", "InboundQueue") == []
    senders = {name for name in FUNCTIONS if "SQSSendMessagePolicy" in policies_on(name, "ReconcileQueue")}
    assert senders == {"ReconcileFunction", "AdminFunction"}
    (event,) = [e for n, e in sqs_events() if n == "ReconcileFunction"]
    assert event["BatchSize"] == 1


def test_the_reconcile_function_holds_exactly_the_tables_it_needs() -> None:
    held: dict[str, list[str]] = {}
    for policy in FUNCTIONS["ReconcileFunction"]["Properties"]["Policies"]:
        for template_name, argument in policy.items():
            if "TableName" in argument:
                held.setdefault(argument["TableName"]["Ref"], []).append(template_name)
    assert held == {
        "IntegrationsTable": ["DynamoDBReadPolicy"],
        "MappingsTable": ["DynamoDBCrudPolicy"],
        "LinksTable": ["DynamoDBCrudPolicy"],
        "BlockLinksTable": ["DynamoDBCrudPolicy"],
        "CursorsTable": ["DynamoDBCrudPolicy"],
        "RunsTable": ["DynamoDBCrudPolicy"],
        "DeadLettersTable": ["DynamoDBWritePolicy"],
    }
    assert policies_on("ReconcileFunction", "NamePrefix") == ["AWSSecretsManagerGetSecretValuePolicy"] * 2


def test_the_reconcile_function_is_told_where_its_queues_and_bus_are() -> None:
    reconcile = FUNCTIONS["ReconcileFunction"]["Properties"]
    assert (reconcile["CodeUri"], reconcile["Handler"], reconcile["Timeout"]) == (
        "functions/reconcile/",
        "app.lambda_handler",
        300,
    )
    assert reconcile["LoggingConfig"] == {"LogGroup": {"Ref": "ReconcileLogGroup"}}
    assert reconcile["Environment"]["Variables"] == {
        "RECONCILE_QUEUE_URL": {"Ref": "ReconcileQueue"},
        "RECONCILE_DLQ_URL": {"Ref": "ReconcileDeadLetterQueue"},
        "EVENT_BUS_NAME": {"Fn::GetAtt": ["EventBus", "Name"]},
    }


def test_the_admin_function_may_record_a_requested_run_and_queue_it_for_the_reconcile_function() -> None:
    assert policies_on("AdminFunction", "RunsTable") == ["DynamoDBCrudPolicy"]
    assert policies_on("AdminFunction", "ReconcileQueue") == ["SQSSendMessagePolicy"]
    assert FUNCTIONS["AdminFunction"]["Properties"]["Environment"]["Variables"] == {
        "RECONCILE_QUEUE_URL": {"Ref": "ReconcileQueue"},
        "IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"},
        "OUTBOUND_DLQ_URL": {"Ref": "OutboundDeadLetterQueue"},
        "INBOUND_QUEUE_URL": {"Ref": "InboundQueue"},
        "INBOUND_DLQ_URL": {"Ref": "InboundDeadLetterQueue"},
        "RECONCILE_DLQ_URL": {"Ref": "ReconcileDeadLetterQueue"},
    }


def test_the_idempotency_table_is_powertools_own_shape_on_demand_and_expires_its_records() -> None:
    properties = TABLES["IdempotencyTable"]["Properties"]
    assert properties["TableName"] == {"Fn::Sub": "${NamePrefix}-idempotency"}
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    users = [name for name in FUNCTIONS if policies_on(name, "IdempotencyTable")]
    assert users == ["AdminFunction"]


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_admin_function_may_remove_an_integration_s_items_from_every_table(name: str) -> None:
    # DELETE /admin/integrations/{id} removes every item calsync keeps for the integration, in every table.
    assert "DynamoDBCrudPolicy" in policies_on("AdminFunction", name)


SCHEDULES = resources_of_type(TEMPLATE, "AWS::Scheduler::Schedule")


def test_the_schedules_ask_the_reconcile_queue_for_an_incremental_and_a_deep_run() -> None:
    assert set(SCHEDULES) == {"ReconcileSchedule", "DeepReconcileSchedule"}
    inputs = {}
    for name, schedule in SCHEDULES.items():
        properties = schedule["Properties"]
        assert (properties["FlexibleTimeWindow"], properties["State"]) == ({"Mode": "OFF"}, "ENABLED"), name
        target = properties["Target"]
        assert target["Arn"] == {"Fn::GetAtt": ["ReconcileQueue", "Arn"]}, name
        assert target["RoleArn"] == {"Fn::GetAtt": ["ReconcileSchedulerRole", "Arn"]}, name
        assert target["SqsParameters"] == {"MessageGroupId": "schedule"}, name
        inputs[name] = json.loads(target["Input"])
    assert inputs == {
        "ReconcileSchedule": {"kind": "schedule", "deep": False},
        "DeepReconcileSchedule": {"kind": "schedule", "deep": True},
    }


@pytest.mark.parametrize(
    ("schedule", "parameter", "condition", "unit", "default", "most"),
    [
        ("ReconcileSchedule", "ReconcileEveryMinutes", "ReconcileEveryMinute", "minute", 15, 1440),
        ("DeepReconcileSchedule", "DeepReconcileEveryHours", "DeepReconcileEveryHour", "hour", 24, 168),
    ],
)
def test_a_schedule_runs_at_its_parameter_s_rate_in_the_singular_for_one(
    schedule: str, parameter: str, condition: str, unit: str, default: int, most: int
) -> None:
    spec = TEMPLATE["Parameters"][parameter]
    assert (spec["Type"], spec["Default"], spec["MinValue"], spec["MaxValue"]) == ("Number", default, 1, most)
    # "rate(1 minutes)" is rejected: 1 takes the singular.
    assert TEMPLATE["Conditions"][condition] == {"Fn::Equals": [{"Ref": parameter}, "1"]}
    assert SCHEDULES[schedule]["Properties"]["ScheduleExpression"] == {
        "Fn::If": [condition, f"rate(1 {unit})", {"Fn::Sub": f"rate(${{{parameter}}} {unit}s)"}]
    }


def test_the_schedules_role_may_only_send_to_the_reconcile_queue_for_this_account() -> None:
    role = TEMPLATE["Resources"]["ReconcileSchedulerRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "ManagedPolicyArns" not in role
    granted = [
        (listed(s["Effect"]), listed(s["Action"]), listed(s["Resource"]))
        for s in statements("ReconcileSchedulerRole")
    ]
    assert granted == [(["Allow"], ["sqs:SendMessage"], [{"Fn::GetAtt": ["ReconcileQueue", "Arn"]}])]


# ---------------------------------------------------------------- streaming task

# The ECS resources, and the roles and log group that exist only for them.
STREAMING = {
    name: r
    for name, r in TEMPLATE["Resources"].items()
    if r["Type"].startswith("AWS::ECS::")
    or (name.startswith("Streaming") and r["Type"] in ("AWS::IAM::Role", "AWS::Logs::LogGroup"))
}


def statements(role: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in TEMPLATE["Resources"][role]["Properties"]["Policies"]:
        found.extend(policy["PolicyDocument"]["Statement"])
    assert found, role
    return found


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_streaming_task_exists_only_with_subnets_and_an_image_so_the_template_deploys_without_them() -> (
    None
):
    assert set(STREAMING) >= {
        "StreamingCluster",
        "StreamingTaskDefinition",
        "StreamingService",
        "StreamingTaskRole",
        "StreamingExecutionRole",
        "StreamingLogGroup",
    }
    assert {name: r.get("Condition") for name, r in STREAMING.items()} == dict.fromkeys(
        STREAMING, "RunStreamingTask"
    )
    # (the template loader spells !Condition as Fn::Condition)
    assert TEMPLATE["Conditions"]["RunStreamingTask"] == {
        "Fn::And": [{"Fn::Condition": "HasVpc"}, {"Fn::Condition": "HasStreamingImage"}]
    }
    assert (
        TEMPLATE["Parameters"]["SubnetIds"]["Default"]
        == ""
        == TEMPLATE["Parameters"]["StreamingImageUri"]["Default"]
    )


def test_the_streaming_service_runs_the_chosen_number_of_small_arm64_tasks_in_private_subnets() -> None:
    service = STREAMING["StreamingService"]["Properties"]
    assert service["DesiredCount"] == {"Ref": "StreamingTaskCount"}
    assert TEMPLATE["Parameters"]["StreamingTaskCount"]["Default"] == 1
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert (network["Subnets"], network["AssignPublicIp"]) == ({"Ref": "SubnetIds"}, "DISABLED")
    # Never two generations at once: together they would exceed the account's streaming connection limit.
    assert service["DeploymentConfiguration"]["MaximumPercent"] == 100
    task = STREAMING["StreamingTaskDefinition"]["Properties"]
    assert task["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert int(task["Cpu"]) <= 512 and int(task["Memory"]) <= 1024
    ((container,),) = [task["ContainerDefinitions"]]
    assert container["Image"] == {"Ref": "StreamingImageUri"}


def test_the_streaming_container_is_told_its_tables_queue_secrets_and_limits() -> None:
    (container,) = STREAMING["StreamingTaskDefinition"]["Properties"]["ContainerDefinitions"]
    env = {variable["Name"]: variable["Value"] for variable in container["Environment"]}
    assert env["INTEGRATIONS_TABLE"] == {"Ref": "IntegrationsTable"}
    assert env["MAPPINGS_TABLE"] == {"Ref": "MappingsTable"}
    assert env["STREAMING_STATE_TABLE"] == {"Ref": "StreamingStateTable"}
    assert env["INBOUND_QUEUE_URL"] == {"Ref": "InboundQueue"}
    assert env["SECRETS_PREFIX"] == {"Fn::Sub": "${NamePrefix}/"}
    assert env["STREAMING_GROUP_SIZE"] == "200"  # EWS: at most 200 subscriptions per streaming connection
    assert env["STREAMING_CONNECTION_LIMIT"] == {"Ref": "StreamingConnectionLimit"}
    assert env["STREAMING_SHARDS"] == {"Ref": "StreamingTaskCount"}
    assert {"AWS_REGION", "STREAMING_TIMED_SYNC_SECONDS"} <= set(env)


# What the streaming task may do, resource by resource; anything else it could do would be a widening.
STREAMING_TASK_MAY = {
    "IntegrationsTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"},
    "MappingsTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"},
    "StreamingStateTable": {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    },
    "InboundQueue": {"sqs:SendMessage"},
    "Exchange secrets": {"secretsmanager:GetSecretValue"},
}


def resource_name(resource: Any) -> str:
    if resource == {"Fn::Sub": SECRET_OF["exchange"]}:
        return "Exchange secrets"
    assert isinstance(resource, dict) and "Fn::GetAtt" in resource and resource["Fn::GetAtt"][1] == "Arn", (
        resource
    )
    return str(resource["Fn::GetAtt"][0])


def test_the_streaming_task_role_is_scoped_to_its_tables_queue_and_secrets() -> None:
    granted: dict[str, set[str]] = {}
    for statement in statements("StreamingTaskRole"):
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        for resource in listed(statement["Resource"]):
            granted.setdefault(resource_name(resource), set()).update(listed(statement["Action"]))
    assert granted == STREAMING_TASK_MAY
    trust = TEMPLATE["Resources"]["StreamingTaskRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "ecs-tasks.amazonaws.com"}]


def test_the_execution_role_only_pulls_images_and_writes_the_tasks_log_group() -> None:
    wildcard_resources = []
    for statement in statements("StreamingExecutionRole"):
        for action in listed(statement["Action"]):
            assert action.split(":")[0] in ("ecr", "logs"), action
        if "*" in listed(statement["Resource"]):
            wildcard_resources.extend(listed(statement["Action"]))
        if any(action.startswith("logs:") for action in listed(statement["Action"])):
            assert statement["Resource"] == {"Fn::Sub": "${StreamingLogGroup.Arn}"}
    # ECR's login call has no resource-level permission: "*" is the only form AWS accepts, and only there.
    assert wildcard_resources == ["ecr:GetAuthorizationToken"]
    assert "ManagedPolicyArns" not in TEMPLATE["Resources"]["StreamingExecutionRole"]["Properties"]


def test_the_local_stack_builds_the_bus_and_resolves_every_variable_the_functions_get(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "pass-for-tests",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        # When the local stack creates the template's resources on moto
        created = create_in_moto("demo")
        env = function_environment(TEMPLATE, created)
        # Then the inbound function's bus exists under the name it is given, beside its queues and tables
        buses = boto3.client("events", region_name=REGION).list_event_buses(NamePrefix="demo-")["EventBuses"]
        assert [bus["Name"] for bus in buses] == [env["EVENT_BUS_NAME"]] == ["demo-events"]
        assert env["INBOUND_QUEUE_URL"].endswith("/demo-inbound.fifo")
        assert (env["BLOCK_LINKS_TABLE"], env["STREAMING_STATE_TABLE"]) == (
            "demo-block-links",
            "demo-streaming-state",
        )
        # And the reconcile function's queues and the runs table exist under the names it is given
        assert env["RECONCILE_QUEUE_URL"] == created.queue_urls["ReconcileQueue"]
        assert env["RECONCILE_QUEUE_URL"].endswith("/demo-reconcile.fifo")
        assert env["RECONCILE_DLQ_URL"].endswith("/demo-reconcile-dlq.fifo")
        assert env["RUNS_TABLE"] == created.tables["RunsTable"] == "demo-runs"
        sqs = boto3.client("sqs", region_name=REGION)
        attributes = sqs.get_queue_attributes(QueueUrl=env["RECONCILE_QUEUE_URL"], AttributeNames=["All"])[
            "Attributes"
        ]
        assert (attributes["FifoQueue"], attributes["ContentBasedDeduplication"]) == ("true", "true")
        assert (
            json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
            == created.queue_arns["ReconcileDeadLetterQueue"]
        )
        # Every variable of every function resolved: nothing is left a reference
        assert all("${" not in value and "Fn::" not in value for value in env.values())


# ---------------------------------------------------------------- metrics, alarms, dashboard

METRICS_NAMESPACE = GLOBAL_FUNCTION["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]


def emitting_services() -> set[str]:
    """The ``service`` dimension of each function's metrics (``function_metrics("...")`` in its entry point), and the
    streaming task's."""
    root = Path(__file__).resolve().parents[1]
    found = {
        match
        for app in (root / "functions").glob("*/app.py")
        for match in re.findall(r'function_metrics\("([a-z-]+)"\)', app.read_text())
    }
    return found | {"streaming"}


def test_every_function_and_the_streaming_task_emit_metrics_in_the_templates_namespace() -> None:
    assert METRICS_NAMESPACE == "Calsync"
    for name in FUNCTIONS:
        own = function_property(FUNCTIONS[name], "Environment") or {}
        assert (
            own.get("Variables", {}).get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
            == METRICS_NAMESPACE
        )
    container = TEMPLATE["Resources"]["StreamingTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert {"Name": "POWERTOOLS_METRICS_NAMESPACE", "Value": METRICS_NAMESPACE} in container["Environment"]
    assert emitting_services() == {"webhook", "outbound", "inbound", "reconcile", "admin", "streaming"}


def test_cloudwatch_can_publish_the_alarms_to_the_topic() -> None:
    resources = TEMPLATE["Resources"]
    topic = resources["AlarmTopic"]["Properties"]
    # The AWS-managed SNS key cannot be shared with CloudWatch: alarms sent to a topic under it never arrive.
    assert "alias/aws/sns" not in json.dumps(topic)
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = resources[key_id]
    assert key["Type"] == "AWS::KMS::Key" and key["Condition"] == resources["AlarmTopic"]["Condition"]
    granted = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement["Effect"] == "Allow"
        and statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(granted) == 1
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(listed(granted[0]["Action"]))


def alarm_on(namespace: str, metric: str) -> list[dict[str, Any]]:
    """The alarms watching ``metric``, directly or in their metric math."""
    found = []
    for alarm in ALARMS.values():
        properties = alarm["Properties"]
        watched = [(properties.get("Namespace"), properties.get("MetricName"))] + [
            (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
            for m in properties.get("Metrics", [])
            if "MetricStat" in m
        ]
        if (namespace, metric) in watched:
            found.append(alarm)
    return found


def dimension_values(alarm: dict[str, Any], name: str) -> list[Any]:
    properties = alarm["Properties"]
    dimensions = list(properties.get("Dimensions", [])) + [
        d
        for m in properties.get("Metrics", [])
        if "MetricStat" in m
        for d in m["MetricStat"]["Metric"]["Dimensions"]
    ]
    return [d["Value"] for d in dimensions if d["Name"] == name]


def test_every_alarm_notifies_the_topic() -> None:
    for name, alarm in ALARMS.items():
        assert alarm["Properties"]["AlarmActions"] == {
            "Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
        }, name


def test_the_age_of_each_work_queues_oldest_message_alarms() -> None:
    watched = [
        value["Fn::GetAtt"][0]
        for alarm in alarm_on("AWS/SQS", "ApproximateAgeOfOldestMessage")
        for value in dimension_values(alarm, "QueueName")
    ]
    assert sorted(watched) == ["InboundQueue", "OutboundQueue", "ReconcileQueue"]


def test_lambda_throttles_alarm_for_every_function_and_sync_throttling_for_each_that_syncs() -> None:
    throttled = [
        value["Ref"]
        for alarm in alarm_on("AWS/Lambda", "Throttles")
        for value in dimension_values(alarm, "FunctionName")
    ]
    assert sorted(throttled) == sorted(FUNCTIONS)
    (backing_off,) = alarm_on(METRICS_NAMESPACE, "Throttled")
    assert set(dimension_values(backing_off, "service")) == {"outbound", "inbound", "reconcile"}


def test_api_server_errors_alarm() -> None:
    (alarm,) = alarm_on("AWS/ApiGateway", "5XXError")
    api = TEMPLATE["Resources"]["CalsyncApi"]["Properties"]
    assert dimension_values(alarm, "ApiName") == [api["Name"]]
    assert dimension_values(alarm, "Stage") == [api["StageName"]]


def test_a_quiet_streaming_task_alarms_only_where_the_task_is_deployed() -> None:
    (alarm,) = alarm_on(METRICS_NAMESPACE, "StreamingHeartbeat")
    assert alarm["Condition"] == "RunStreamingTask"
    assert alarm["Properties"]["TreatMissingData"] == "breaching"
    assert alarm["Properties"]["ComparisonOperator"] == "LessThanThreshold"
    assert dimension_values(alarm, "service") == ["streaming"]


def test_a_mapping_needing_attention_alarms_whichever_function_held_its_changes_back() -> None:
    (alarm,) = alarm_on(METRICS_NAMESPACE, "MassDeleteRefused")
    assert set(dimension_values(alarm, "service")) == {"inbound", "reconcile"}
    (total,) = [m for m in alarm["Properties"]["Metrics"] if m.get("ReturnData")]
    assert total["Expression"].count("FILL(") == 2


def dashboard_metrics() -> list[list[Any]]:
    body = TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # ${...} are filled in by CloudFormation; a placeholder keeps the JSON readable here.
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "resolved", body))["widgets"]
    return [metric for widget in widgets for metric in widget["properties"]["metrics"]]


def test_the_dashboard_shows_queues_errors_throttles_lag_and_items_written() -> None:
    shown = {(m[0], m[1]) for m in dashboard_metrics()}
    assert {
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/ApiGateway", "5XXError"),
        (METRICS_NAMESPACE, Metric.OUTBOUND_LAG.value),
        (METRICS_NAMESPACE, Metric.INBOUND_LAG.value),
        (METRICS_NAMESPACE, Metric.ITEMS_WRITTEN.value),
    } <= shown


def test_the_dashboard_and_alarms_name_only_metrics_and_services_the_code_emits() -> None:
    emitted = {metric.value for metric in Metric}
    ours = [m for m in dashboard_metrics() if m[0] == METRICS_NAMESPACE]
    assert ours
    for metric in ours:
        assert metric[1] in emitted, metric
        assert metric[2:4] == ["service", metric[3]] and metric[3] in emitting_services(), metric
    for alarm in ALARMS.values():
        for namespace, name in [
            (alarm["Properties"].get("Namespace"), alarm["Properties"].get("MetricName"))
        ] + [
            (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
            for m in alarm["Properties"].get("Metrics", [])
            if "MetricStat" in m
        ]:
            if namespace == METRICS_NAMESPACE:
                assert name in emitted
                assert set(dimension_values(alarm, "service")) <= emitting_services()


def test_the_functions_that_dead_letter_only_write_dead_letter_records_and_the_admin_function_replays_them() -> (
    None
):
    for name in ("OutboundFunction", "InboundFunction", "ReconcileFunction"):
        held = [
            template_name
            for policy in FUNCTIONS[name]["Properties"]["Policies"]
            for template_name, argument in policy.items()
            if argument.get("TableName") == {"Ref": "DeadLettersTable"}
        ]
        assert held == ["DynamoDBWritePolicy"], name
    properties = TABLES["DeadLettersTable"]["Properties"]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    admin = FUNCTIONS["AdminFunction"]["Properties"]
    polled = {
        policy["SQSPollerPolicy"]["QueueName"]["Fn::GetAtt"][0]
        for policy in admin["Policies"]
        if "SQSPollerPolicy" in policy
    }
    sent = {
        policy["SQSSendMessagePolicy"]["QueueName"]["Fn::GetAtt"][0]
        for policy in admin["Policies"]
        if "SQSSendMessagePolicy" in policy
    }
    # It reads and deletes in the dead-letter queues only, and sends back to the three work queues only.
    assert polled == {"OutboundDeadLetterQueue", "InboundDeadLetterQueue", "ReconcileDeadLetterQueue"}
    assert sent == {"OutboundQueue", "InboundQueue", "ReconcileQueue"}
    variables = admin["Environment"]["Variables"]
    assert {
        variables[name]["Ref"] for name in ("OUTBOUND_DLQ_URL", "INBOUND_DLQ_URL", "RECONCILE_DLQ_URL")
    } == polled
