"""Test-suite setup: make sure the example plugin is installed.

The conformance tests run every registered backend, the example plugin
included (examples/mmbench-example-plugin registers "flat" through the
mmbench.backends entry point).  `make test` installs it; when the suite is run
another way and the plugin is missing, it is installed here, before test
collection, so the parameter lists see it.
"""
import importlib
import importlib.metadata
import pathlib
import subprocess
import sys

PLUGIN = pathlib.Path(__file__).resolve().parents[1] / "examples" / "mmbench-example-plugin"


def pytest_configure(config):
    try:
        importlib.metadata.distribution("mmbench-example-plugin")
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(PLUGIN)],
                   check=True)
    importlib.invalidate_caches()
    try:                                 # the new .pth is not read by this interpreter
        importlib.import_module("mmbench_flat")
    except ImportError:
        sys.path.insert(0, str(PLUGIN))
    from mmbench import registry
    registry.reset()
