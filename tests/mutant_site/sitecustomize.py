"""Applies the mutant named by $REALTIME_MUTANT when a Python process starts (tests/mutants.py).

Only the mutation check (tests/test_mutants.py) puts this folder on PYTHONPATH, for the pytest run it starts and
every Python process that run starts in turn (the servers of the browser tests inherit the environment).
"""
import importlib.util
import os
import sys

if os.environ.get("REALTIME_MUTANT"):
    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mutants.py")
    _spec = importlib.util.spec_from_file_location("mutants", _path)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["mutants"] = _module
    _spec.loader.exec_module(_module)
    _module.apply_from_environment()
