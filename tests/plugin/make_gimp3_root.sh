#!/bin/sh
# Build a Debian 13 (trixie) root with GIMP 3 and its Python plug-in support, for the GIMP 3
# plug-in test (Debian 12 only has GIMP 2.10). About 650 MB; 71 s on the 2-core build machine
# from deb.debian.org. .ci/run calls it before the suite; by hand:
#
#   sudo apt-get install mmdebstrap
#   sudo tests/plugin/make_gimp3_root.sh /var/tmp/impasto-gimp3/root
#   sudo IMPASTO_GIMP3_ROOT=/var/tmp/impasto-gimp3/root .venv/bin/pytest tests/plugin/test_gimp3.py
#
# A complete root is kept and reused. The root is built beside ROOT and renamed into place at
# the end, so a build that was cut short is never taken for a root: it is built again.
set -eu
ROOT=${1:?usage: make_gimp3_root.sh ROOT}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -x "$ROOT/usr/bin/gimp-console-3.0" ]; then
  echo "GIMP 3 root already there: IMPASTO_GIMP3_ROOT=$ROOT"
  exit 0
fi
command -v mmdebstrap >/dev/null || {
  echo "make_gimp3_root.sh: mmdebstrap is not installed (sudo apt-get install mmdebstrap)" >&2
  exit 1
}
PARTIAL="$ROOT.partial"
rm -rf "$PARTIAL"
mkdir -p "$(dirname "$ROOT")"
mmdebstrap --variant=apt \
  --include=gimp,python3,gir1.2-gimp-3.0,gir1.2-gegl-0.4,ca-certificates \
  trixie "$PARTIAL" "$MIRROR"
rm -rf "$ROOT"
mv "$PARTIAL" "$ROOT"
echo "GIMP 3 root ready: IMPASTO_GIMP3_ROOT=$ROOT"
