#!/bin/sh
# Run a command inside a Debian 13 root that has GIMP 3 (made by make_gimp3_root.sh), with the
# project (its virtual environment: the engine; tests/data: the test images), the folder of the
# VGG19 weights ($IMPASTO_WEIGHTS), the Python the venv was built from, and a work folder
# bind-mounted at the same paths, so the plug-in reaches the engine.
# A venv from a Python in its own prefix (pyenv, uv) gets that whole prefix. A venv from the
# system's Python (/usr/bin/python3.11 on Debian 12) cannot have /usr mounted over the root's, so
# only its interpreter and its standard library (/usr/lib/python3.11, a folder the Debian 13
# root does not have: its Python is 3.13) are mounted; the root's C libraries serve it.
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
PYTHON_FILE=""  # the interpreter alone, when its prefix is the system's
case "$PYTHON_PREFIX" in
  /usr|/usr/local|/)
    STDLIB=$("$VENV_PYTHON" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
    if [ -e "$ROOT$STDLIB/os.py" ]; then  # (an empty folder is a mount point left by a run)
      echo "gimp3_chroot.sh: the GIMP 3 root has its own $STDLIB; make the venv from another" \
        "Python version, or from one in its own prefix (pyenv, uv)" >&2
      exit 3
    fi
    PYTHON_FILE=$VENV_PYTHON
    PYTHON_PREFIX=$STDLIB ;;
esac
exec unshare --mount --propagation private sh -eu -c '
ROOT=$1; shift
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --rbind /sys "$ROOT/sys"
mount -t tmpfs tmpfs "$ROOT/tmp"   # the root stays clean: its /tmp vanishes with the command
PYTHON_FILE=$1; shift
if [ -n "$PYTHON_FILE" ]; then
  # A file is mounted on a file: an empty one stays in the root as the mount point.
  [ -e "$ROOT$PYTHON_FILE" ] || : > "$ROOT$PYTHON_FILE"
  mount --bind "$PYTHON_FILE" "$ROOT$PYTHON_FILE"
fi
while [ "$1" != "--" ]; do
  if [ -n "$1" ] && [ -d "$1" ]; then
    mkdir -p "$ROOT$1"
    mount --bind "$1" "$ROOT$1"
  fi
  shift
done
shift
exec chroot "$ROOT" "$@"
' sh "$ROOT" "$PYTHON_FILE" "$PROJECT" "$WEIGHTS_DIR" "$PYTHON_PREFIX" "$WORK" -- "$@"
