#!/usr/bin/env bash
# Installs the Debian packages radai and its tests need, only those missing.
# Runs apt-get directly as root, or through sudo otherwise.
set -euo pipefail

packages=(
  python3-venv        # venv for .venv (python3.11 on Debian 12)
  dcmtk               # echoscu, storescu, findscu, movescu, getscu: DIMSE peers in tests
  orthanc             # a real PACS peer
  orthanc-dicomweb    # Orthanc's DICOMweb plugin (STOW-RS destination in tests)
  dicom3tools         # dciodvfy: validates every object radai writes
  postgresql          # the scale-out database; tests run against it
  chromium            # the browser the UI tests drive
  nodejs              # node and npm fetch the pinned OHIF viewer
  npm
  fonts-dejavu-core   # a font for burned-in captions
  curl
)

missing=()
for p in "${packages[@]}"; do
  # node/npm may come from elsewhere than Debian (nodesource, nvm); the commands are what count
  if [[ $p == nodejs ]] && command -v node >/dev/null; then continue; fi
  if [[ $p == npm ]] && command -v npm >/dev/null; then continue; fi
  if [[ $p == python3-venv ]] && python3.11 -m venv --help >/dev/null 2>&1; then continue; fi
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "Installing Debian packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "error: missing Debian packages (${missing[*]}) and neither root nor sudo is available" >&2
  exit 1
fi
# Debian's package scripts would start Orthanc and PostgreSQL as system services;
# radai's tests start their own instances on private ports instead.
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
