"""AWS resources for tests (moto), built from template.yaml by the local stack's own code (``local.aws``), so the
tested schema, the local stack's and the deployed one cannot drift."""

from __future__ import annotations

from typing import Any

import boto3

from local.aws import Resources, create_resources, function_environment, load_template

REGION = "eu-west-2"


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def create_in_moto(prefix: str = "test") -> Resources:
    """Every table and queue of the template (dead-letter queues first), inside an active ``mock_aws``."""
    return create_resources(boto3.Session(region_name=REGION), parameters={"NamePrefix": prefix})


def create_tables(prefix: str = "test") -> dict[str, str]:
    """Create the template's resources; the tables' names by logical id."""
    return create_in_moto(prefix).tables


__all__ = [
    "REGION",
    "Resources",
    "create_in_moto",
    "create_tables",
    "function_environment",
    "load_template",
    "resources_of_type",
]
