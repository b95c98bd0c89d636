"""moto as the local stack runs it (``python -m local.moto_server``): its queries answer exactly what DynamoDB's
would, though they read only their partition, and it counts the requests it serves by operation."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import requests

from local.moto_server import STATS_PATH, MotoProcess, start_moto

_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "eu-west-2",
}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoProcess]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


def _url(server: MotoProcess) -> str:
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


@pytest.fixture(scope="module")
def dynamodb(moto: MotoProcess) -> Any:
    client = boto3.client("dynamodb", endpoint_url=_url(moto), **_CREDENTIALS)
    client.create_table(
        TableName="links",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "owner")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_owner",
                "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
            }
        ],
    )
    # 12 partitions of 10 items; owners a/b alternate; sk m0..m9; some items without an owner (not in the index).
    for p in range(12):
        for m in range(10):
            item = {"pk": {"S": f"p{p:02d}"}, "sk": {"S": f"m{m}"}, "n": {"N": str(p * 10 + m)}}
            if m != 7:
                item["owner"] = {"S": "ab"[(p + m) % 2]}
            client.put_item(TableName="links", Item=item)
    return client


ALL = [
    (f"p{p:02d}", f"m{m}", "ab"[(p + m) % 2] if m != 7 else None, p * 10 + m)
    for p in range(12)
    for m in range(10)
]


def _query_all(client: Any, **kwargs: Any) -> list[tuple[str, str]]:
    """Every page of one query, in the order DynamoDB returns them."""
    found: list[tuple[str, str]] = []
    while True:
        page = client.query(TableName="links", **kwargs)
        found += [(i["pk"]["S"], i["sk"]["S"]) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_query_on_the_table_key_answers_its_partition_in_key_order(dynamodb: Any) -> None:
    assert _query_all(
        dynamodb, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p03"}}
    ) == [("p03", f"m{m}") for m in range(10)]
    backwards = _query_all(
        dynamodb,
        KeyConditionExpression="pk = :p AND sk > :s",
        ScanIndexForward=False,
        Limit=3,
        ExpressionAttributeValues={":p": {"S": "p05"}, ":s": {"S": "m4"}},
    )
    assert backwards == [("p05", f"m{m}") for m in range(9, 4, -1)]
    assert (
        _query_all(
            dynamodb, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "nope"}}
        )
        == []
    )
    filtered = _query_all(
        dynamodb,
        KeyConditionExpression="pk = :p",
        FilterExpression="n > :n",
        ExpressionAttributeValues={":p": {"S": "p11"}, ":n": {"N": "115"}},
    )
    assert filtered == [("p11", f"m{m}") for m in range(6, 10)]


def test_a_query_on_an_index_finds_every_matching_item_across_partitions(dynamodb: Any) -> None:
    expected = sorted((pk, sk) for pk, sk, owner, _ in ALL if owner == "a" and sk == "m4")
    assert (
        sorted(
            _query_all(
                dynamodb,
                IndexName="by_owner",
                KeyConditionExpression="#o = :o AND sk = :s",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": {"S": "a"}, ":s": {"S": "m4"}},
            )
        )
        == expected
    )
    paged = _query_all(
        dynamodb,
        IndexName="by_owner",
        KeyConditionExpression="#o = :o AND begins_with(sk, :s)",
        ExpressionAttributeNames={"#o": "owner"},
        Limit=4,
        ExpressionAttributeValues={":o": {"S": "b"}, ":s": {"S": "m"}},
    )
    assert sorted(paged) == sorted((pk, sk) for pk, sk, owner, _ in ALL if owner == "b")
    assert len(paged) == len(set(paged))


def test_moto_counts_the_requests_it_serves_by_operation(moto: MotoProcess, dynamodb: Any) -> None:
    before = requests.get(f"{_url(moto)}{STATS_PATH}", timeout=5).json()
    dynamodb.get_item(TableName="links", Key={"pk": {"S": "p00"}, "sk": {"S": "m0"}})
    dynamodb.get_item(TableName="links", Key={"pk": {"S": "p00"}, "sk": {"S": "m1"}})
    after = requests.get(f"{_url(moto)}{STATS_PATH}", timeout=5).json()
    operation = "DynamoDB_20120810.GetItem"
    assert after[operation]["requests"] - before.get(operation, {"requests": 0})["requests"] == 2
    assert after[operation]["cpu_seconds"] > 0


def _items(dynamodb: Any, pk: str) -> dict[str, Any]:
    answer = dynamodb.query(
        TableName="links",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": pk}},
        ConsistentRead=True,
    )
    return {item["sk"]["S"]: item for item in answer["Items"]}


def _update_put_delete(pk: str) -> list[dict[str, Any]]:
    """A transaction's writes in partition ``pk``: m1's n set to -1, a new item "new", m2 removed."""
    return [
        {
            "Update": {
                "TableName": "links",
                "Key": {"pk": {"S": pk}, "sk": {"S": "m1"}},
                "UpdateExpression": "SET n = :n",
                "ExpressionAttributeValues": {":n": {"N": "-1"}},
            }
        },
        {"Put": {"TableName": "links", "Item": {"pk": {"S": pk}, "sk": {"S": "new"}}}},
        {"Delete": {"TableName": "links", "Key": {"pk": {"S": pk}, "sk": {"S": "m2"}}}},
    ]


def test_a_cancelled_transaction_leaves_every_item_as_it_was(dynamodb: Any) -> None:
    before = _items(dynamodb, "p03")
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                # An update in place, a new item and a removal, then a condition that fails: none of it stays.
                *_update_put_delete("p03"),
                {
                    "ConditionCheck": {
                        "TableName": "links",
                        "Key": {"pk": {"S": "p03"}, "sk": {"S": "m3"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    assert _items(dynamodb, "p03") == before


def test_a_transaction_that_passes_applies_every_write(dynamodb: Any) -> None:
    dynamodb.transact_write_items(TransactItems=_update_put_delete("p04"))
    after = _items(dynamodb, "p04")
    assert after["m1"]["n"] == {"N": "-1"} and "new" in after and "m2" not in after


def test_updates_of_one_item_at_the_same_moment_all_count(moto: MotoProcess, dynamodb: Any) -> None:
    # Given a counter that eight writers each add to 100 times at once, two attributes per update (as a reconcile
    # run counts a mapping done and what it repaired), while others write the same partition
    def add(writer: int) -> None:
        client = boto3.client("dynamodb", endpoint_url=_url(moto), **_CREDENTIALS)
        for number in range(100):
            client.update_item(
                TableName="links",
                Key={"pk": {"S": "p05"}, "sk": {"S": "counter"}},
                UpdateExpression="ADD done :one, repaired :two",
                ExpressionAttributeValues={":one": {"N": "1"}, ":two": {"N": "2"}},
            )
            client.put_item(TableName="links", Item={"pk": {"S": "p05"}, "sk": {"S": f"w{writer}-{number}"}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(8)))

    # Then no update was lost, as DynamoDB applies each one atomically
    counter = _items(dynamodb, "p05")["counter"]
    assert (counter["done"], counter["repaired"]) == ({"N": "800"}, {"N": "1600"})
