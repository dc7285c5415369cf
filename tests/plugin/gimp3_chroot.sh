#!/bin/sh
# Run a command inside a Debian 13 root that has GIMP 3 (made by make_gimp3_root.sh), with the
# project (its virtual environment: the engine; tests/data: the test images), the folder of the
# VGG19 weights ($IMPASTO_WEIGHTS), the Python the venv was built from, and a work folder
# bind-mounted at the same paths, so the plug-in reaches the engine.
# The mounts live in a private mount namespace: they vanish with the command, nothing is left
# mounted on the host, and the root's /tmp is a throw-away tmpfs. Needs root (or
# CAP_SYS_ADMIN) and unshare(1).
#
# usage: gimp3_chroot.sh ROOT WORKDIR COMMAND [ARG...]
set -eu
ROOT=$1
WORK=$2
shift 2
PROJECT=$(cd "$(dirname "$0")/../.." && pwd)
VENV_PYTHON=$(readlink -f "$PROJECT/.venv/bin/python")
PYTHON_PREFIX=$(dirname "$(dirname "$VENV_PYTHON")")
WEIGHTS_DIR=""  # the folder of the VGG19 weights the test found, wherever it is
if [ -n "${IMPASTO_WEIGHTS:-}" ]; then WEIGHTS_DIR=$(dirname "$IMPASTO_WEIGHTS"); fi
case "$PYTHON_PREFIX" in
  /usr|/usr/local|/)
    echo "gimp3_chroot.sh: the venv's Python lives in $PYTHON_PREFIX, which cannot be mounted" \
      "over the GIMP 3 root's own; use a venv made from a Python outside /usr (pyenv, uv)" >&2
    exit 3 ;;
esac
exec unshare --mount --propagation private sh -eu -c '
ROOT=$1; shift
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --rbind /sys "$ROOT/sys"
mount -t tmpfs tmpfs "$ROOT/tmp"   # the root stays clean: its /tmp vanishes with the command
while [ "$1" != "--" ]; do
  if [ -n "$1" ] && [ -d "$1" ]; then
    mkdir -p "$ROOT$1"
    mount --bind "$1" "$ROOT$1"
  fi
  shift
done
shift
exec chroot "$ROOT" "$@"
' sh "$ROOT" "$PROJECT" "$WEIGHTS_DIR" "$PYTHON_PREFIX" "$WORK" -- "$@"
