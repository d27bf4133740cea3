"""Test-suite setup: install the example plugin for this test session only.

The conformance tests run every registered backend, the example plugin
included (examples/mmbench-example-plugin registers "flat" through the
mmbench.backends entry point).  It is pip-installed into a private directory
put first on sys.path, so the suite proves a real third-party install works,
while the project's environment (and so `make compare`) keeps only the designs.
"""
import atexit
import importlib
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

PLUGIN = pathlib.Path(__file__).resolve().parents[1] / "examples" / "mmbench-example-plugin"


def pytest_configure(config):
    try:
        importlib.metadata.distribution("mmbench-example-plugin")
        return                                   # already installed by the user
    except importlib.metadata.PackageNotFoundError:
        pass
    site = tempfile.mkdtemp(prefix="mmbench-plugin-site-")
    atexit.register(shutil.rmtree, site, True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", site, str(PLUGIN)], check=True)
    sys.path.insert(0, site)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH")) if p)
    importlib.invalidate_caches()
    from mmbench import registry
    registry.reset()
