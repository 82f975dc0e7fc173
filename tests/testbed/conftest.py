"""A small built testbed, shared by every test of a session (and by the xdist workers)."""

import pytest

from geomalign.testbed import TestbedConfig, build_testbed


@pytest.fixture(scope="session")
def small_testbed(tmp_path_factory, worker_id):
    """The small preset, built once per session into a folder all xdist workers share.

    Concurrent builds of one configuration wait for each other (a lock beside the cache folder),
    so with ``-n 2`` the first worker builds and the second reuses.
    """
    base = tmp_path_factory.getbasetemp()
    cache = (base if worker_id == "master" else base.parent) / "geomalign-testbed-cache"
    return build_testbed(TestbedConfig.small(), cache_dir=cache, progress=False)
