"""uv.lock is the one source of installed versions: .venv, the layer's requirements and the built layer follow it.

Uses the uv that `make setup` pins (.venv-uv/bin/uv) to read the lock; the built layer is checked only when
`make sam-check` (part of `make test`) has built it.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from tools.lock import EXPORT, generate

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".venv-uv" / "bin" / "uv"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
# What sam build makes of template.yaml's CalsyncLayer (BuildMethod python3.12, BuildArchitecture arm64).
LAYER = ROOT / ".aws-sam" / "build" / "CalsyncLayer" / "python"

# Where the layer runs: the python3.12 Lambda runtime on arm64 (Amazon Linux 2023, glibc 2.34).
LAMBDA_ENV = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.12.0",
    "python_version": "3.12",
    "sys_platform": "linux",
    "extra": "",
}
LAMBDA_PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(34, 16, -1)] + ["manylinux2014_aarch64"]
LAMBDA_TAGS = {
    *cpython_tags((3, 12), abis=["cp312"], platforms=LAMBDA_PLATFORMS),
    *compatible_tags((3, 12), interpreter="cp312", platforms=LAMBDA_PLATFORMS),
}


def uv_export(*groups: str) -> list[Requirement]:
    """The lock's pins (name==version; marker) for the given group options, without calsync itself."""
    if not UV.exists():
        pytest.fail(f"{UV.relative_to(ROOT)} is missing: run `make setup` (it installs the pinned uv)")
    out = subprocess.run(
        [
            UV,
            "export",
            "--frozen",
            "--no-emit-project",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            *groups,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [Requirement(line) for line in out.splitlines() if line and not line.startswith("#")]


def pins(requirements: list[Requirement], environment: dict[str, str]) -> dict[str, str]:
    """name -> version of the requirements whose markers hold in the environment."""
    chosen = {}
    for requirement in requirements:
        if requirement.marker is None or requirement.marker.evaluate(environment):
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", requirement
            chosen[canonicalize_name(requirement.name)] = specifier.version
    return chosen


def test_venv_has_exactly_the_locked_dev_install() -> None:
    if not VENV_PYTHON.exists():
        pytest.fail(".venv is missing: run `make setup`")
    # Asked of .venv's own interpreter, whichever Python runs the tests: its marker environment and distributions.
    # Only its site-packages (-I: not the current folder, where setuptools leaves calsync.egg-info).
    probe = (
        "import importlib.metadata as m, json, packaging.markers as pm, sysconfig; "
        "site = sorted({sysconfig.get_path('purelib'), sysconfig.get_path('platlib')}); "
        "print(json.dumps({'env': pm.default_environment(), 'dists': [[d.metadata['Name'], d.version, "
        "d.read_text('direct_url.json')] for d in m.distributions(path=site)]}))"
    )
    found = json.loads(
        subprocess.run([VENV_PYTHON, "-I", "-c", probe], check=True, capture_output=True, text=True).stdout
    )
    installed = {canonicalize_name(name): version for name, version, _ in found["dists"]}
    calsync = [json.loads(url or "{}") for name, _, url in found["dists"] if name == "calsync"]
    assert calsync and calsync[0].get("dir_info", {}).get("editable"), (
        "calsync is not installed editable in .venv"
    )
    del installed["calsync"]

    locked = pins(uv_export("--group", "dev"), {**found["env"], "extra": ""})
    assert installed == locked, {
        "not in the lock": sorted(set(installed) - set(locked)),
        "locked but missing": sorted(set(locked) - set(installed)),
        "other version": {
            n: (installed[n], locked[n]) for n in installed.keys() & locked if installed[n] != locked[n]
        },
    }


def test_layer_requirements_are_generated_from_the_lock() -> None:
    if not UV.exists():
        pytest.fail(f"{UV.relative_to(ROOT)} is missing: run `make setup`")
    assert "--no-dev" in EXPORT
    assert (ROOT / "shared" / "requirements.txt").read_text() == generate(str(UV)), (
        "shared/requirements.txt differs from what uv.lock gives: run `make lock` (never edit it by hand)"
    )


def test_the_layer_ships_the_versions_the_tests_run_against() -> None:
    # uv resolves the runtime set alone in a fork of its own; it must pick what the dev install (the tests) has.
    runtime = pins(uv_export("--no-dev"), LAMBDA_ENV)
    with_dev = pins(uv_export("--group", "dev"), LAMBDA_ENV)
    differ = {
        name: (version, with_dev.get(name))
        for name, version in runtime.items()
        if with_dev.get(name) != version
    }
    assert differ == {}
    for name in ("boto3", "botocore", "s3transfer", "exchangelib", "pydantic", "aws-lambda-powertools"):
        assert name in runtime


def test_every_runtime_package_has_a_wheel_for_lambda_arm64() -> None:
    # sam build without Docker fetches arm64 wheels; a package it had to build from an sdist would be built for this
    # machine instead (x86_64, for compiled code). So each runtime package needs a wheel the Lambda runtime takes.
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    wheels: dict[tuple[str, str], list[str]] = {}
    for package in lock["package"]:
        files = [Path(wheel["url"]).name for wheel in package.get("wheels", [])]
        wheels[(canonicalize_name(package["name"]), package["version"])] = files
    missing = []
    for name, version in pins(uv_export("--no-dev"), LAMBDA_ENV).items():
        tags: set[Tag] = set()
        for filename in wheels[(name, version)]:
            tags |= parse_wheel_filename(filename)[3]
        if not tags & LAMBDA_TAGS:
            missing.append(f"{name}=={version}")
    assert missing == []


def test_built_layer_has_exactly_the_locked_runtime_set() -> None:
    if not LAYER.is_dir():
        pytest.skip(
            f"no built layer at {LAYER.relative_to(ROOT)}: `make sam-check` (part of `make test`) builds it"
        )
    built = {}
    for metadata in LAYER.glob("*.dist-info/METADATA"):
        headers = Parser().parsestr(metadata.read_text(), headersonly=True)
        built[canonicalize_name(headers["Name"])] = headers["Version"]
    locked = pins(uv_export("--no-dev"), LAMBDA_ENV)
    assert built == locked, {
        "not in the lock": sorted(set(built) - set(locked)),
        "locked but missing": sorted(set(locked) - set(built)),
        "other version": {n: (built[n], locked[n]) for n in built.keys() & locked if built[n] != locked[n]},
    }
