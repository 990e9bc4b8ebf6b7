"""The mutation check: with each named mutant applied (tests/mutants.py), the tests that claim the broken behaviour
fail, every one of them, and fail by an assertion (not an error in setting up).

Each mutant runs its tests in a fresh pytest process (``REALTIME_MUTANT=<name>``, tests/mutant_site on
PYTHONPATH: the mutant is in that process and in every Python process it starts). A mutant marked pending is
expected to survive (xfail, strict: once a strengthened test kills it, remove the mark by deleting its
``pending``).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mutants import ENV, MUTANTS

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(__file__).resolve().parent / "mutant_site"
RUN_TIMEOUT_S = 240

pytestmark = pytest.mark.slow


def run_with(name: str | None, tests: tuple[str, ...]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `tests` with mutant `name` applied (None: none): the finished run and the node ids of the tests that
    failed."""
    env = {key: value for key, value in os.environ.items() if key != ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITE), str(ROOT), os.environ.get("PYTHONPATH")]))
    if name is not None:
        env[ENV] = name
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *tests],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return done, set(re.findall(r"^FAILED (\S+?)(?: - .*)?$", done.stdout, flags=re.M))


def _param(mutant):
    marks = [pytest.mark.xfail(reason=f"not killed yet: {mutant.pending}", strict=True)] if mutant.pending else []
    if mutant.needs:
        marks.append(pytest.mark.skipif(shutil.which(mutant.needs) is None, reason=f"its killers need {mutant.needs}"))
    return pytest.param(mutant.name, marks=marks, id=mutant.name)


@pytest.mark.parametrize("name", [_param(m) for m in MUTANTS.values()])
def test_every_mutant_is_killed_by_the_tests_that_name_its_breakage(name):
    mutant = MUTANTS[name]
    done, failed = run_with(name, mutant.killers)
    output = done.stdout[-4000:] + done.stderr[-2000:]
    assert f"mutant {name} applied" in done.stderr, output
    assert not re.search(r"^ERROR ", done.stdout, flags=re.M), f"a test errored instead of failing:\n{output}"
    survivors = [test for test in mutant.killers if test not in failed]
    assert not survivors, f"{mutant.breaks}, and yet these passed: {survivors}\n{output}"
    assert done.returncode == 1, output


def test_the_killers_pass_without_a_mutant():
    """The same runs without a mutant pass (so each mutant's failures are its own, not the check's): the
    in-process killers, all in one run."""
    tests = sorted({test for m in MUTANTS.values() if m.needs is None for test in m.killers})
    done, failed = run_with(None, tuple(tests))
    assert done.returncode == 0 and not failed and "mutant" not in done.stderr, done.stdout[-3000:] + done.stderr
