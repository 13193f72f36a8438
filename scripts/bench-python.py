#!/usr/bin/env python3
"""Per-step cost of the khsgd module's sorters against grab-sampler's pair balance, on the CPU.

For each gradient length D and batch B: the mean seconds per step(G) of khsgd.Sorter (CD-GraB and
KH-SGD; G [1, B, D] float32) and of grab-sampler's PairBalance (its step({"w": G[B, D]}), which
walks the examples in Python), over --steps steps after one warm-up step; then a table with the
machine and the versions. A benchmark, not a test: numbers depend on the machine and its load.

  PYTHONPATH=build-pip/python .venv/bin/python scripts/bench-python.py [--D 21 10000 1000000]
      [--B 16 64 256] [--steps 8] [--sorters CD-GraB KH-SGD]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import types

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_steps(step, G, steps: int) -> float:
    step(G)  # warm-up (allocations, first-touch)
    start = time.perf_counter()
    for _ in range(steps):
        step(G)
    return (time.perf_counter() - start) / steps


def khsgd_cost(khsgd, name: str, B: int, D: int, steps: int) -> float:
    sorter = khsgd.Sorter(name, examples=B * (steps + 1), microbatch=B, D=D, epochs=1, seed=1)
    sorter.sort()
    G = torch.randn(1, B, D)
    return time_steps(sorter.step, G, steps)


def one_pass_cost(B: int, D: int, steps: int) -> float:
    """One pass over the step's G: G[B, D] @ v, the floor a walk over the rows can approach."""
    G, v = torch.randn(B, D), torch.randn(D)
    return time_steps(lambda G: G @ v, G, steps)


def grab_cost(grab_pair, B: int, D: int, steps: int) -> float:
    sorter = grab_pair(B * (steps + 1), D, random_first_epoch=False, device="cpu")
    sorter.reset_epoch()
    G = {"w": torch.randn(B, D)}
    return time_steps(sorter.step, G, steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--D", type=int, nargs="+", default=[21, 10_000, 1_000_000])
    parser.add_argument("--B", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--sorters", nargs="+", default=["CD-GraB", "KH-SGD"])
    args = parser.parse_args()

    import khsgd

    try:  # grab-sampler imports torch_sparse for a projection not used here (its wheel is a
        sys.modules.setdefault("torch_sparse", types.SimpleNamespace(SparseTensor=None))  # source build)
        from grabsampler.sorter import PairBalance
        from importlib.metadata import version

        grab_version = version("grab-sampler")
    except ImportError as e:
        PairBalance, grab_version = None, f"not importable ({e})"

    print(f"machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, khsgd module "
          f"{os.path.dirname(khsgd.__file__)}, grab-sampler {grab_version}")
    print(f"mean seconds per step over {args.steps} steps (after one warm-up), CPU, float32")
    columns = [f"khsgd {name}" for name in args.sorters] + ["G @ v"] + (["grab pair"] if PairBalance else [])
    header = f"{'D':>9} {'B':>5} " + " ".join(f"{c:>16}" for c in columns)
    if "CD-GraB" in args.sorters:
        header += f" {'CD-GraB/(G@v)':>14}"
    if PairBalance and "CD-GraB" in args.sorters:
        header += f" {'grab/CD-GraB':>13}"
    print(header)
    for D in args.D:
        for B in args.B:
            costs = [khsgd_cost(khsgd, name, B, D, args.steps) for name in args.sorters]
            one_pass = one_pass_cost(B, D, args.steps)
            line = f"{D:>9} {B:>5} " + " ".join(f"{c:>16.3e}" for c in costs + [one_pass])
            cd_grab = costs[args.sorters.index("CD-GraB")] if "CD-GraB" in args.sorters else None
            if PairBalance:
                grab = grab_cost(PairBalance, B, D, args.steps)
                line += f" {grab:>16.3e}"
            if cd_grab is not None:
                line += f" {cd_grab / one_pass:>13.2f}x"
                if PairBalance:
                    line += f" {grab / cd_grab:>12.1f}x"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
