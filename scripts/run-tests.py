"""Runs the whole test suite; "no tests collected" (pytest exit code 5) is a failure."""

import os
import subprocess
import sys

NO_TESTS_COLLECTED = 5

args = [sys.executable, "-m", "pytest", *sys.argv[1:]]
if os.environ.get("CI"):
    args += ["-p", "no:cacheprovider"]
rc = subprocess.call(args)
if rc == NO_TESTS_COLLECTED:
    print("error: pytest collected no tests", file=sys.stderr)
    sys.exit(1)
sys.exit(rc)
