"""Prints the Lambda layer's requirements (shared/requirements.txt) as generated from uv.lock.

`make lock` writes its output to shared/requirements.txt; tests/test_lock.py checks the file is still exactly this.
Usage: python tools/layer_requirements.py PATH_TO_UV
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEADER = """\
# The Lambda layer's dependencies (sam build installs them next to the calsync package) and the streaming task's.
# Generated from uv.lock by `make lock`: do not edit. Change [project].dependencies in ../pyproject.toml instead.
# boto3, botocore and s3transfer are shipped at the locked versions, not left to the Lambda runtime's copy.
"""

# The runtime set only: no dev group, not calsync itself (sam build copies shared/calsync as the layer's code).
# Hashes: pip then installs in hash-checking mode, from nothing but the files the lock names.
EXPORT = ["--frozen", "--no-dev", "--no-emit-project", "--no-header", "--no-annotate"]


def generate(uv: str) -> str:
    exported = subprocess.run(
        [uv, "export", *EXPORT], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return HEADER + exported


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.stdout.write(generate(sys.argv[1]))
