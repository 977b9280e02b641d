"""tuneyard's benchmarks: each figure is a ratio against a baseline run beside it.

`python -m bench.run` (what `make bench` runs) measures P1–P7 of issue 7,
prints the table, writes `bench/results.json` and `bench/RESULTS.md`. The
machines these run on are noisy (other work shares the cores), so every
figure compares tuneyard with a baseline measured in the same run, on the
same machine, and absolute numbers are only context.
"""
