#!/usr/bin/env bash
# Install the named Debian packages that are missing (apt-get as root, else say what to run).
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# Packages that ship a service (orthanc, nginx, redis-server) must not start it, nor enable it
# for the next boot: tests start their own copies on ports of their own.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
fi
trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
enabled() { find /etc/systemd/system -path '*.wants/*.service' -printf '%f\n' 2>/dev/null | sort -u; }
before=$(enabled)
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null; then
  for unit in $(comm -13 <(echo "$before") <(enabled)); do
    systemctl disable --quiet "$unit" 2>/dev/null || true
  done
fi
