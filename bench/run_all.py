"""Run every benchmark in sequence and print a summary: `python -m bench.run_all` (or `make bench`).

Options: --only NAME[,NAME...] to run some of them; --json PATH to also write the figures as JSON.
The exit status is non-zero only if a benchmark failed to run; goals met or not never change it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback

from bench import common

BENCHMARKS = ("engine_overhead", "multi_turn", "detokenize", "memory", "history", "downloads", "gui", "imports",
              "instant", "kv_quantized", "speculative", "server")


def _summary_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(benchmark, figure, value, goal / verdict) rows for one result."""

    def value(v) -> str:
        return f"{v:,.0f} bytes" if isinstance(v, int) else f"{v:.3f}"

    rows = [(result["name"], result["figure"], value(result["value"]),
             f"{result['goal']}: {common.verdict(result['met'])}")]
    extras = [result["release"]] if result.get("release") else []
    for extra in extras + list(result.get("more", [])):
        rows.append(("", extra["figure"], value(extra["value"]),
                     f"{extra['goal']}: {common.verdict(extra['met'])}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--json", default="", help="write the results to this file")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    started_at = datetime.datetime.now().astimezone()
    print(f"Hearth benchmarks, {started_at:%Y-%m-%d %H:%M %Z}")
    print(f"Machine: {common.machine()}")
    print("Figures are ratios against baselines measured in this run; nothing here asserts a time.")

    results: dict[str, dict] = {}
    durations: dict[str, float] = {}
    failed: list[str] = []
    for name in names:
        module = __import__(f"bench.{name}", fromlist=["run"])
        tic = time.perf_counter()
        try:
            results[name] = module.run()
        except Exception:  # report and carry on with the others
            traceback.print_exc()
            failed.append(name)
        durations[name] = time.perf_counter() - tic
        print(f"   ({name} took {durations[name]:.0f} s)")

    print()
    print("== Summary")
    table = [("benchmark", "figure", "value", "goal"), *[
        row for name in names if name in results for row in _summary_rows(results[name])
    ]]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for i, r in enumerate(table):
        print("   " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            print("   " + "  ".join("-" * w for w in widths))
    for name in failed:
        print(f"   {name}: FAILED (see the traceback above)")
    total = sum(durations.values())
    print("   time: " + ", ".join(f"{n} {d:.0f} s" for n, d in durations.items()) + f"; total {total:.0f} s")

    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(
                {"date": started_at.isoformat(), "machine": common.machine(), "results": results,
                 "durations_s": durations, "failed": failed},
                out, indent=2, default=str,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
