"""Suite-wide rules: `gpu`-marked tests skip without a usable CUDA device, and a test module that cannot be
imported because an optional component is not installed here is skipped (saying which), not an error.

The GPU machines lack parts of the CPU stack (MediaPipe, the WebRTC and signaling libraries), and one module
failing to import would stop the whole collection, so `pytest -m gpu` would run nothing there. Only a
missing top-level package named in OPTIONAL turns into a skip: any other import error (this project's own code
included) still fails the collection.
"""

import re

import pytest

OPTIONAL = frozenset({"mediapipe", "websockets", "aiohttp", "aiortc", "av", "gsplat", "cupy"})
_MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


def missing_optional(collection_failure: str) -> str | None:
    """The optional package whose absence made a module's collection fail (from its report's text), else None."""
    found = _MISSING.search(collection_failure)
    name = found.group(1).partition(".")[0] if found else None
    return name if name in OPTIONAL else None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        name = missing_optional(str(report.longrepr))
        if name is not None:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), None, f"Skipped: needs {name}, which is not installed here")
    return report


def pytest_collection_modifyitems(config, items):
    from realtime.render.gsplat_backend import cuda_usable

    if cuda_usable():
        return
    skip = pytest.mark.skip(reason="needs a usable CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
