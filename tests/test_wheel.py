"""The built wheel is the product: it carries the web client and the CUDA sources, and its server serves the page.

The wheel is built from this checkout (`pip wheel`, no dependencies), unpacked into a temporary folder, and run
from there with the repository out of the import path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = out.glob("realtime_avatar-*.whl")
    target = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def _env(site: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(site), PYTHONUNBUFFERED="1")


def test_the_wheel_carries_the_web_client_and_the_kernels(unpacked_wheel):
    for name in sorted(p.name for p in (ROOT / "client_web").iterdir() if p.is_file()):
        shipped = unpacked_wheel / "realtime" / "web" / name
        assert shipped.is_file(), f"{name} of client_web/ is not in the wheel"
        assert shipped.read_bytes() == (ROOT / "client_web" / name).read_bytes()
    for source in sorted((ROOT / "kernels").glob("*.cu")):
        assert (unpacked_wheel / "realtime" / "kernels" / source.name).read_bytes() == source.read_bytes()


def test_the_installed_package_launches_the_repository_kernels(unpacked_wheel, tmp_path):
    """What the CuPy deformer compiles, read by the installed package itself, is kernels/ byte for byte."""
    read = ("import json, realtime.deform.cupy_backend as c; "
            "print(json.dumps({'from': c.__file__, 'sources': {n: c.kernel_source(n) for n in set(c.KERNELS.values())}}))")
    done = subprocess.run([sys.executable, "-c", read], cwd=tmp_path, env=_env(unpacked_wheel), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert Path(loaded["from"]).is_relative_to(unpacked_wheel), loaded["from"]
    repository = {p.name: p.read_text() for p in (ROOT / "kernels").glob("*.cu")}
    assert loaded["sources"] == repository


def test_the_installed_server_serves_its_page(unpacked_wheel, tmp_path):
    env = _env(unpacked_wheel)
    where = subprocess.run([sys.executable, "-c", "import realtime; print(realtime.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(unpacked_wheel), where.stdout + where.stderr
    output = tmp_path / "server.log"
    with open(output, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "realtime.stream.server", "--port", "0"], cwd=tmp_path,
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        # its output goes to a file, read until the address shows, the server exits or the deadline passes
        deadline = time.monotonic() + 60
        while not (match := re.search(r"serving on (\S+)", output.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, \
                "the server did not start: " + output.read_text()[-2000:]
            time.sleep(0.1)
        url = match.group(1)
        with urllib.request.urlopen(url, timeout=10) as page:
            html = page.read().decode()
        assert "<script" in html and "app.js" in html
        with urllib.request.urlopen(url + "app.js", timeout=10) as script:
            assert script.read() == (ROOT / "client_web" / "app.js").read_bytes()
    finally:
        proc.terminate()
        proc.wait(10)
