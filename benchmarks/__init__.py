"""The benchmarks: every one in a run with `python -m benchmarks` (run_all), or one alone with
`python -m benchmarks.bench_<name>`; results and the report under benchmarks/results."""
