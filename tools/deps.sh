#!/bin/sh
# Installs the Debian packages the build and tests need, when any is missing.
# As root it runs apt-get; otherwise it prints the exact command and stops.
set -eu

PKGS="build-essential pkg-config check libcjson-dev libopenblas-dev libopenmpi-dev openmpi-bin binutils
      libpcre2-dev libutf8proc-dev zlib1g-dev python3-pip fortunes fortunes-zh bible-kjv"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && { "$(dirname "$0")/debian_text.sh"; exec "$(dirname "$0")/fetch_models.sh"; }

cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "libinternlm needs these packages:$missing" >&2
    echo "install them with:  sudo sh -c '$cmd'" >&2
    exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends $missing >&2
"$(dirname "$0")/debian_text.sh"
exec "$(dirname "$0")/fetch_models.sh"
