"""Maintenance of the region table: which AWS regions botocore knows and the table does not.

``python -m nospy.deployment.region_check PATH/TO/botocore/data/endpoints.json`` prints each missing
region (exit 1 if any, 0 if none, 2 if the file cannot be read). Google Cloud and Azure publish no
such machine-readable list in a package; their part of the table is checked against their location
pages (see the table's ``sources``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nospy.deployment import regions
from nospy.deployment.interface import DeploymentError


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m nospy.deployment.region_check PATH/TO/botocore/data/endpoints.json\n")
        return 2
    try:
        missing = regions.aws_missing(json.loads(Path(argv[0]).read_text(encoding="utf-8")), regions.load())
    except (OSError, ValueError, DeploymentError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for line in missing:
        sys.stdout.write(f"missing from the region table: aws {line}\n")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
