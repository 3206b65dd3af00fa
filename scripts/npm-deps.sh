#!/usr/bin/env bash
# Fetches the pinned npm packages radai serves into node_modules/.
#
# The OHIF viewer: radai serves its prebuilt dist/ (with its own app-config.js), so
# the exact published tarball is fetched with `npm pack` and checked against the
# registry's integrity hash. A plain `npm install @ohif/app@3.13.2` cannot work: the
# package depends on @ohif/i18n@3.13.2, which the registry does not have (npm error
# ETARGET), and radai needs none of its build-time dependency tree anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

fetch() {  # name version integrity
  local name=$1 version=$2 integrity=$3
  local dest="node_modules/$name"
  local stamp="$dest/.radai-installed-$version"
  [[ -f $stamp ]] && return 0
  command -v npm >/dev/null || { echo "error: npm is not installed (scripts/system-deps.sh installs it)" >&2; exit 1; }
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "Fetching $name@$version from the npm registry"
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  local tgz
  tgz=$(ls "$tmp"/*.tgz)
  local actual
  actual=$(python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tgz")
  if [[ $actual != "$integrity" ]]; then
    echo "error: $name@$version does not match its pinned integrity hash" >&2
    exit 1
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -xzf "$tgz" -C "$dest" --strip-components=1
  touch "$stamp"
}

fetch @ohif/app 3.13.2 'sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=='
# htmx: the small script the UI pages use for partial updates (worklist refresh, verdict buttons).
fetch htmx.org 2.0.4 'sha512-HLxMCdfXDOJirs3vBZl/ZLoY+c7PfM4Ahr2Ad4YXh6d22T5ltbTXFFkpx9Tgb2vvmWFMbIc3LqN2ToNkZJvyYQ=='
