"""`make lock`: updates uv.lock, then regenerates the layer's requirements (shared/requirements.txt) from it.

Usage: python tools/lock.py PATH_TO_UV [--upgrade | --upgrade-package NAME ...]

Why more than `uv lock`: uv resolves the `sam` group (conflicting with `dev`) in a fork of its own, but a package
with no version in the lock yet (a new one, or every package under --upgrade) then gets, in the dev fork too, the
version the sam fork chose whenever it fits. `uv lock --upgrade` alone pulls boto3, pydantic and others down to
aws-sam-cli's pins. So the runtime set and the dev group are first locked without the SAM tools, in a scratch
copy of pyproject.toml; when uv.lock does not then give the same versions, it is locked again from that result
(uv keeps the versions a lock already has) and SAM's own versions are added beside them.

tests/test_lock.py checks that shared/requirements.txt is still exactly `generate()`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

HEADER = """\
# The Lambda layer's dependencies (sam build installs them next to the calsync package) and the streaming task's.
# Generated from uv.lock by `make lock`: do not edit. Change [project].dependencies in ../pyproject.toml instead.
# boto3, botocore and s3transfer are shipped at the locked versions, not left to the Lambda runtime's copy.
"""

# The runtime set only: no dev group, not calsync itself (sam build copies shared/calsync as the layer's code).
# Hashes: pip then installs in hash-checking mode, from nothing but the files the lock names.
EXPORT = ["--frozen", "--no-dev", "--no-emit-project", "--no-header", "--no-annotate"]


def uv(uv_path: str, *args: str, cwd: Path = ROOT) -> str:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    command = [os.path.abspath(uv_path), *args]
    return subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout


def generate(uv_path: str) -> str:
    return HEADER + uv(uv_path, "export", *EXPORT)


def runtime_and_dev(uv_path: str, project: Path) -> list[str]:
    """The locked runtime set and dev install, as uv exports them (with markers)."""
    common = ["export", "--frozen", "--no-emit-project", "--no-hashes", "--no-header", "--no-annotate"]
    return [uv(uv_path, *common, *group, cwd=project) for group in (["--no-dev"], ["--group", "dev"])]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return json.dumps(value)  # JSON strings and lists of strings are valid TOML
    raise SystemExit(
        f"tools/lock.py cannot copy {value!r} into its scratch pyproject.toml; extend toml_value()"
    )


def without_sam(pyproject: dict[str, Any]) -> str:
    """pyproject.toml as uv lock reads it, less the groups that conflict with dev and the conflicts themselves."""
    tool_uv = dict(pyproject.get("tool", {}).get("uv", {}))
    apart = {item["group"] for conflict in tool_uv.pop("conflicts", []) for item in conflict} - {"dev"}
    project = {
        k: v
        for k, v in pyproject["project"].items()
        if k in ("name", "version", "requires-python", "dependencies")
    }
    tables: dict[str, dict[str, Any]] = {
        "project": project,
        "build-system": pyproject["build-system"],
        "dependency-groups": {
            g: r for g, r in pyproject.get("dependency-groups", {}).items() if g not in apart
        },
        "tool.uv": tool_uv,
    }
    return "".join(
        f"[{name}]\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in table.items()) + "\n"
        for name, table in tables.items()
    )


def lock(uv_path: str, lock_args: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="calsync-lock-") as tmp:
        scratch = Path(tmp)
        (scratch / "pyproject.toml").write_text(
            without_sam(tomllib.loads((ROOT / "pyproject.toml").read_text()))
        )
        shutil.copy(ROOT / "uv.lock", scratch / "uv.lock")
        uv(uv_path, "lock", *lock_args, cwd=scratch)
        wanted = runtime_and_dev(uv_path, scratch)

        uv(uv_path, "lock")  # keeps every version, the SAM tools' too, when nothing was added or upgraded
        if runtime_and_dev(uv_path, ROOT) != wanted:
            print(
                "tools/lock.py: the SAM tools' fork moved runtime or dev versions; locking from the scratch lock"
            )
            shutil.copy(scratch / "uv.lock", ROOT / "uv.lock")
            uv(uv_path, "lock")
            if runtime_and_dev(uv_path, ROOT) != wanted:
                raise SystemExit("tools/lock.py: uv.lock still differs from the lock without the SAM tools")

    new = ROOT / "shared" / "requirements.txt.new"
    new.write_text(generate(uv_path))
    new.replace(ROOT / "shared" / "requirements.txt")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    lock(sys.argv[1], sys.argv[2:])
