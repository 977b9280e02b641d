"""Run the benchmarks, print the table, write results.json and RESULTS.md.

    python -m bench.run                  # everything (what `make bench` runs), ~10-15 min
    python -m bench.run --only P3,P4     # some figures; merged into the last results
    python -m bench.run --quick          # seconds-long smoke mode (tiny sizes)
    python -m bench.run --render         # reprint the last table, rewrite RESULTS.md

A full run writes `bench/results.json` (git-ignored) and `bench/RESULTS.md`
(the latest table, the machine, and for each miss what limits it). A quick
run writes only where `--out` says: its figures mean nothing. Child logs go
to `bench/.cache/logs/<time>/`. The exit status is 1 when a benchmark failed
to run (a miss is not a failure: benchmarks are not tests).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.common import BENCH_DIR, CACHE, Result, machine
from bench.report import FIGURES, load, print_table, write_json, write_markdown

# Module -> the figures it measures (P1 and P2 come from the same training runs).
MODULES = {
    "bench.training": ("P1", "P2"),
    "bench.checkpoint_write": ("P3",),
    "bench.api_list": ("P4",),
    "bench.download": ("P5",),
    "bench.completion": ("P6",),
    "bench.list_scale": ("P7",),
    "bench.evaluation": ("P8",),
    "bench.cold_start": ("P10",),
    "bench.load": ("P13",),
    "bench.engines": ("P11", "P12"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke mode: tiny sizes, figures meaningless")
    parser.add_argument("--only", default="",
                        help="comma-separated figures to run, e.g. P3,P4 (default: all)")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: print the table of the last results.json and "
                             "rewrite RESULTS.md from it")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for results.json/RESULTS.md (default: bench/ for a "
                             "full run, nowhere for --quick)")
    args = parser.parse_args(argv)
    wanted = {p.strip().upper() for p in args.only.split(",") if p.strip()}
    unknown = wanted - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; "
                     f"known: {', '.join(FIGURES)}")
    args.wanted = wanted or set(FIGURES)
    return args


def failed(figure: str, error: str, *, quick: bool, stamp: str) -> Result:
    measure, op, goal = FIGURES[figure]
    nan = float("nan")
    return Result(id=figure, measure=measure, unit="", tuneyard=nan, baseline=nan, ratio=nan,
                  goal_op=op, goal=goal, baseline_name="", error=error, quick=quick,
                  measured_at=stamp)


def render(out: Path) -> int:
    data = load(out / "results.json")
    if not data.get("results"):
        print(f"no results in {out / 'results.json'}: run the benchmarks first")
        return 1
    results = [Result.from_json(r) for r in data["results"]]
    meta = {k: v for k, v in data.items() if k not in ("machine", "results")}
    print_table(results, title="tuneyard benchmarks (last run)")
    write_markdown(out / "RESULTS.md", machine=data.get("machine", {}), results=results,
                   meta=meta)
    print(f"wrote {out / 'RESULTS.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args.out or BENCH_DIR)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    log_dir = CACHE / "logs" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"tuneyard bench{' (quick)' if args.quick else ''}: {info['cpu']}, "
          f"{info['cores']} cores, {info['ram_gib']} GiB, torch {info['torch']}; "
          f"load average {info['load_average_at_start']}; logs in {log_dir}", flush=True)
    results: list[Result] = []
    for module_name, figures in MODULES.items():
        if not args.wanted & set(figures):
            continue
        print(f"running {'/'.join(figures)} ({module_name}) …", flush=True)
        begun = time.monotonic()
        try:
            module = importlib.import_module(module_name)
            produced = module.run(quick=args.quick, log_dir=log_dir)
        except Exception as exc:  # noqa: BLE001 - reported in the table, the others still run
            (log_dir / f"{module_name}.error.txt").write_text(traceback.format_exc())
            traceback.print_exc()
            produced = [failed(f, f"{type(exc).__name__}: {exc}".splitlines()[0],
                               quick=args.quick, stamp=stamp) for f in figures]
        seconds = time.monotonic() - begun
        for result in produced:
            result.seconds, result.measured_at, result.quick = seconds, stamp, args.quick
            state = "error" if result.error else f"ratio {result.ratio:.3f}"
            print(f"  {result.id}: {state} ({seconds:.0f}s)", flush=True)
        results += produced

    title = f"tuneyard benchmarks{' (quick: figures meaningless)' if args.quick else ''}"
    print_table(results, title=title)
    out = args.out if args.out is not None else (None if args.quick else BENCH_DIR)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        meta = {"quick": args.quick, "seconds": time.monotonic() - started}
        merged = results
        if args.wanted != set(FIGURES):  # keep the other figures of the last run
            previous = load(out / "results.json").get("results", [])
            ran = {r.id for r in results}
            merged = [Result.from_json(p) for p in previous if p.get("id") not in ran] + results
            meta["seconds"] = load(out / "results.json").get("seconds", meta["seconds"])
        merged.sort(key=lambda r: int(r.id[1:]) if r.id[1:].isdigit() else 0)
        write_json(out / "results.json", machine=info, results=merged, meta=meta)
        write_markdown(out / "RESULTS.md", machine=info, results=merged, meta=meta)
        print(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
