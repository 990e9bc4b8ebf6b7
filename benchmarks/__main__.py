"""`python -m benchmarks`: every benchmark, then the report and plots (see benchmarks/run_all.py)."""

import sys

from .run_all import main

sys.exit(main())
