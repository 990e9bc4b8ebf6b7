"""The mutation check: with each named mutant applied (tests/mutants.py), the tests that claim the broken behaviour
fail, every one of them, and fail by an assertion (not an error in setting up).

Each mutant runs its tests in a fresh pytest process (``REALTIME_MUTANT=<name>``, tests/mutant_site on
PYTHONPATH: the mutant is in that process and in every Python process it starts). A mutant with ``pending`` set
is expected to survive (it is reported as xfail with the reason); once a strengthened test kills it, the check
fails until its ``pending`` is deleted.
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


def run_with(name: str | None, tests: tuple[str, ...]) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Run `tests` with mutant `name` applied (None: none): the finished run, and the outcome (PASSED, FAILED,
    ERROR) of each test that ran, by node id."""
    env = {key: value for key, value in os.environ.items() if key != ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITE), str(ROOT), os.environ.get("PYTHONPATH")]))
    if name is not None:
        env[ENV] = name
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *tests],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    outcomes = dict((test, outcome) for outcome, test in
                    re.findall(r"^(PASSED|FAILED|ERROR) (\S+?)(?: - .*)?$", done.stdout, flags=re.M))
    return done, outcomes


def _param(mutant):
    skip = mutant.needs is not None and shutil.which(mutant.needs) is None
    return pytest.param(mutant.name, id=mutant.name,
                        marks=[pytest.mark.skip(reason=f"its killers need {mutant.needs}")] if skip else [])


@pytest.mark.parametrize("name", [_param(m) for m in MUTANTS.values()])
def test_every_mutant_is_killed_by_the_tests_that_name_its_breakage(name):
    mutant = MUTANTS[name]
    done, outcomes = run_with(name, mutant.killers)
    output = done.stdout[-4000:] + done.stderr[-2000:]
    assert f"mutant {name} applied" in done.stderr, output
    ran = {test: outcomes.get(test) for test in mutant.killers}
    assert all(outcome in ("PASSED", "FAILED") for outcome in ran.values()), f"not every test ran to an end: {ran}\n{output}"
    survivors = [test for test, outcome in ran.items() if outcome == "PASSED"]
    if mutant.pending:
        assert survivors, f"{name} is killed now: delete its `pending` in tests/mutants.py"
        pytest.xfail(f"not killed yet: {mutant.pending}")
    assert not survivors, f"{mutant.breaks}, and yet these passed: {survivors}\n{output}"
    print(f"\n{name} ({mutant.breaks}): killed by {', '.join(t.partition('::')[2] for t in mutant.killers)}")


def test_the_harness_alone_breaks_nothing():
    """The same run without a mutant passes (so a mutant's failures are the mutant's, not the check's). That every
    killer passes on the code as it is, the rest of the suite shows."""
    tests = MUTANTS["frozen_one_euro"].killers
    done, outcomes = run_with(None, tests)
    assert done.returncode == 0 and set(outcomes.values()) == {"PASSED"} and len(outcomes) == len(tests), \
        done.stdout[-3000:] + done.stderr[-2000:]
    assert "mutant" not in done.stderr
