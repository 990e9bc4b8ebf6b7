"""`python -m benchmarks`: every benchmark, then the report and plots (see benchmarks/run_all.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_all  # noqa: E402

sys.exit(run_all.main())
