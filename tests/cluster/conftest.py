"""A real Ray cluster for the cluster tests: two nodes on this machine, one CPU each, started
and stopped by the tests themselves (never `ray stop`, which would stop everyone's Ray)."""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import tempfile

import pytest

from tests.conftest import skip_or_fail
from tests.hotfolder.conftest import watch  # noqa: F401 - the daemon fixture, for these tests too


def require_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        skip_or_fail("Ray is not installed (pip install 'impasto[cluster]')")


@pytest.fixture(scope="module")
def ray_cluster():
    """The address of a two-node Ray cluster that the module's tests share. Its processes,
    the daemons' and batches' workers included, see the same token and a short RAY_TMPDIR."""
    require_ray()
    tmp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # Unix socket paths must stay short
    env = {
        "RAY_TMPDIR": tmp,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_worker_niceness": "0",  # workers at the suite's priority, not 15 levels below
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # before Ray is imported: it reads them then
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tmp, ignore_errors=True)
