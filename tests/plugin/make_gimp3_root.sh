#!/bin/sh
# Build a Debian 13 (trixie) root with GIMP 3 and its Python plug-in support, for the GIMP 3
# plug-in test (Debian 12 only has GIMP 2.10). About 1 GB, a few minutes on a fast mirror.
#
#   sudo apt-get install mmdebstrap
#   sudo tests/plugin/make_gimp3_root.sh /var/tmp/impasto-gimp3/root
#   sudo IMPASTO_GIMP3_ROOT=/var/tmp/impasto-gimp3/root .venv/bin/pytest tests/plugin/test_gimp3.py
set -eu
ROOT=${1:?usage: make_gimp3_root.sh ROOT}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mmdebstrap --variant=apt \
  --include=gimp,python3,gir1.2-gimp-3.0,gir1.2-gegl-0.4,ca-certificates \
  trixie "$ROOT" "$MIRROR"
echo "GIMP 3 root ready: IMPASTO_GIMP3_ROOT=$ROOT"
