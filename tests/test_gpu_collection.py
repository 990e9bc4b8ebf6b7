"""`pytest -m gpu` on a machine like the GPU machines' image, without MediaPipe, websockets, aiortc, PyAV, gsplat,
CuPy or a CUDA device: the whole suite collects, every GPU test is skipped, and the modules that need the
missing libraries are skipped (saying which); none is an error.

The machine is emulated in a pytest subprocess: a plugin (`-p`) makes those packages unfindable exactly as if
they were not installed (`import` raises ModuleNotFoundError, `importlib.util.find_spec` gives None and
`importlib.metadata` finds no distribution), and CUDA_VISIBLE_DEVICES hides any GPU.
"""

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from conftest import OPTIONAL, missing_optional

TESTS = Path(__file__).resolve().parent
GPU_FILES = ("test_deform_gpu_parity.py", "test_render_gpu_parity.py")
NEEDS_STREAM = "test_stream_server.py"  # imports the WebRTC server, so websockets and aiortc, at its top

HIDE = textwrap.dedent('''
    """Makes the packages in HIDDEN look not installed (import, find_spec and importlib.metadata)."""
    import importlib.machinery
    import re
    import sys

    HIDDEN = {hidden!r}


    def hidden(name):
        return re.split(r"[.\\-_]", name or "", maxsplit=1)[0].lower() in HIDDEN


    class Hide:
        def __init__(self, inner):
            self.inner = inner

        def find_spec(self, name, path=None, target=None):
            return None if hidden(name) else self.inner.find_spec(name, path, target)

        def find_distributions(self, *args, **kwargs):
            return (d for d in self.inner.find_distributions(*args, **kwargs) if not hidden(d.metadata["Name"]))

        def __getattr__(self, name):
            return getattr(self.inner, name)


    assert not [name for name in sys.modules if hidden(name)], "a hidden package was imported before the plugin"
    sys.meta_path[:] = [Hide(f) if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
''')


def test_the_collection_hook_names_only_optional_packages():
    assert missing_optional("E   ModuleNotFoundError: No module named 'aiortc.contrib'") == "aiortc"
    assert missing_optional("E   ModuleNotFoundError: No module named 'websockets'") == "websockets"
    assert missing_optional("E   ModuleNotFoundError: No module named 'realtime.nothing'") is None
    assert missing_optional("E   SyntaxError: invalid syntax") is None


@pytest.mark.slow
def test_gpu_tests_collect_and_skip_without_the_optional_stack(tmp_path):
    (tmp_path / "hide_optional.py").write_text(HIDE.format(hidden=sorted(OPTIONAL)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "CUDA_VISIBLE_DEVICES": ""}
    report = tmp_path / "report.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "hide_optional", "-p", "no:cacheprovider", "-m",
                           "gpu", "-q", "-rs", f"--junitxml={report}", str(TESTS)],
                          cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=600)
    output = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, output
    cases = list(ElementTree.parse(report).getroot().iter("testcase"))
    outcomes = {(case.get("classname"), case.get("name")): [child.tag for child in case] for case in cases}
    assert all(tags == ["skipped"] for tags in outcomes.values()), outcomes  # no error, failure or pass
    modules = {classname or name for classname, name in outcomes}  # a module skipped whole has no class name
    assert {f"tests.{Path(name).stem}" for name in GPU_FILES} <= modules, modules
    assert f"{NEEDS_STREAM}: needs " in output and "which is not installed here" in output, output


def test_the_builtin_rig_check_skips_without_mediapipe(monkeypatch):
    from deform_checks import builtin_rig_or_skip

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` fails, as where it is not installed
    with pytest.raises(pytest.skip.Exception, match="MediaPipe"):
        builtin_rig_or_skip()
