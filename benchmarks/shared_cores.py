"""Two TensorFlow processes at once on one machine's cores: does each do better sizing its
thread pools for every core (TensorFlow's default) or for its share
(:func:`segcourse.labs.environment.thread_settings`, which the tests' workers and the grader's
jobs use)? One lab under nbval, two copies started together, their wall time; the two settings
alternate, ``--repeats`` times each, and the report gives each one's median.

    python benchmarks/shared_cores.py --out benchmarks/shared_cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from segcourse.labs.environment import thread_settings, usable_cores
from segcourse.speed import matmul_gflops

SETTINGS = {"every core (TensorFlow's default)": {}, "its share": thread_settings(2)}


def pair_seconds(notebook: str, settings: dict) -> float:
    """Wall seconds of two copies of ``notebook`` under nbval started at once; both must pass."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")}
    environ.update(settings)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", notebook]
    started = time.perf_counter()
    runs = [subprocess.Popen(command, env=environ, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate()[0] for run in runs]
    seconds = time.perf_counter() - started
    for run, output in zip(runs, outputs, strict=True):
        if run.returncode:
            raise SystemExit(f"{notebook} failed under nbval:\n{output[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="notebooks/04_encoder_decoder.ipynb")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/shared_cores")
    args = parser.parse_args()
    ceiling = [matmul_gflops()]
    seconds = {name: [] for name in SETTINGS}
    for repeat in range(args.repeats):
        for name, settings in SETTINGS.items():
            seconds[name].append(pair_seconds(args.notebook, settings))
            print(f"repeat {repeat + 1}/{args.repeats}, {name}: {seconds[name][-1]:.1f} s",
                  flush=True)
    ceiling.append(matmul_gflops())
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    report = {"notebook": args.notebook, "cores": usable_cores(),
              "settings": SETTINGS, "seconds": seconds, "medians": medians,
              "matmul_gflops": [round(value) for value in ceiling]}
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    default, share = medians.values()
    lines = [
        "# Two TensorFlow processes at once: thread pools for every core or for a share",
        "",
        f"`{args.notebook}` under nbval, two copies started together, on {report['cores']} "
        f"cores; float32 2048² matmul {ceiling[0]:.0f} → {ceiling[1]:.0f} GFLOP/s (start → end). "
        f"The settings alternate, {args.repeats} pairs each; medians.",
        "",
        "| each process's thread pools | pair's wall seconds (median) | every pair |",
        "|---|---|---|",
        *(f"| {name} ({', '.join(f'{k}={v}' for k, v in SETTINGS[name].items()) or 'unset'})"
          f" | {medians[name]:.1f} | {', '.join(f'{s:.1f}' for s in seconds[name])} |"
          for name in SETTINGS),
        "",
        f"A share each takes {share / default:.2f}× the time of every core each.",
    ]
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
