"""`make` on a machine that lacks something: it names what to install, and never trusts a .venv
that was cut short. Run in a scratch folder with a stand-in `python3`, so the project's own
.venv is never touched and nothing is downloaded."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")

# A stand-in for python3: `-c` answers as Python VERSION would; `-m venv DIR` either fails the
# way Debian's python3 does without python3-venv, or makes a DIR whose python cannot run pip.
FAKE_PYTHON = """\
#!/bin/sh
echo "$*" >> "{log}"
case "$1" in
  -c) [ "{version}" = "3.11" ] && exit 0 || exit 1 ;;
  -m)
    if [ "{venv}" = "broken" ]; then
      mkdir -p "$3/bin"
      echo "The virtual environment was not created successfully because ensurepip is not" >&2
      echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv" >&2
      exit 1
    fi
    mkdir -p "$3/bin" && printf '#!/bin/sh\\nexit 1\\n' > "$3/bin/python"
    chmod +x "$3/bin/python"
    exit 0 ;;
esac
exit 1
"""


def make(tmp_path: Path, version: str = "3.11", venv: str = "works"):
    (tmp_path / "pyproject.toml").write_text("")
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON.format(log=tmp_path / "calls.log", version=version, venv=venv))
    python.chmod(0o755)
    return subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), "-C", str(tmp_path), f"PYTHON={python}",
         ".venv/.impasto-installed"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_python_without_venv_is_named_with_what_to_install(tmp_path):
    done = make(tmp_path, venv="broken")
    assert done.returncode != 0
    assert "cannot make a virtual environment here" in done.stderr
    assert "sudo apt-get install python3-venv" in done.stderr
    assert not (tmp_path / ".venv").exists()  # the half-made one is not left to be reused


def test_a_python_too_old_is_named(tmp_path):
    done = make(tmp_path, version="3.9")
    assert done.returncode != 0
    assert "impasto needs Python 3.11 or newer" in done.stderr
    assert not (tmp_path / ".venv").exists()


def test_a_half_made_venv_is_made_again_not_reused(tmp_path):
    half = tmp_path / ".venv"
    (half / "bin").mkdir(parents=True)
    (half / "left-over").write_text("from a run that was cut short")
    done = make(tmp_path)
    assert "-m venv .venv" in (tmp_path / "calls.log").read_text()
    assert not (half / "left-over").exists()
    assert ".venv is incomplete; making it again" in done.stdout
    # (the stand-in venv cannot install anything, so make stops at pip, as it should)
    assert done.returncode != 0 and not (half / ".impasto-installed").exists()
