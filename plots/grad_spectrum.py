#!/usr/bin/env python3
"""The gradient spectrum of the paper's supplementary figure, from khsgd_train --save_grads.

For each saved epoch k, X^k is the gathered per-example gradient matrix (one row per example,
in the order the epoch processed them; N' x D). The tool computes

  singular values of X^k,
  the spread   eps_k = s * max_i |x_i - mean(x)| / sqrt(N'),  s the paper's shift
               s = sqrt(9 e ln(48 821 400) ln(48 821 400 (1 + ln(244 107 / 2)))),
  the eps_k-rank: how many singular values exceed eps_k,

writes spectrum.csv (epoch, eps, eps_rank, sv_1 .. sv_D) and draws

  singular_values_epoch_K.{png,pdf}  the singular values of one epoch, log scale, with eps_k,
  eps_rank_histogram.{png,pdf}       the eps-ranks over the saved epochs, median marked.

    python3 plots/grad_spectrum.py RUN_DIR [--epoch K] [--out DIR] [--shift S]

RUN_DIR holds grads-epochE.pt files (torch.save format; Python's torch.load reads them too).
"""

from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import re
import sys

import numpy as np

from khsgd_results import PAPER_SHIFT, load_pt


def spread(X: np.ndarray, shift: float) -> float:
    """eps = shift * max_i |x_i - mean(x)| / sqrt(n), as the paper's emax()."""
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    return shift * float(np.sqrt((centred ** 2).sum(axis=1)).max()) / math.sqrt(X.shape[0])


def singular_values(X: np.ndarray) -> np.ndarray:
    return np.linalg.svd(np.asarray(X, dtype=np.float64), compute_uv=False)


def eps_rank(svs: np.ndarray, eps: float) -> int:
    return int((svs > eps).sum())


def analyse(X: np.ndarray, shift: float = PAPER_SHIFT) -> dict:
    X = np.asarray(X)
    if X.ndim == 3:  # [1, N, D] as the reference's saved tensors
        X = X.reshape(-1, X.shape[-1])
    svs = singular_values(X)
    eps = spread(X, shift)
    return {"singular_values": svs, "eps": eps, "eps_rank": eps_rank(svs, eps)}


def saved_epochs(run_dir: str) -> dict[int, str]:
    files = {}
    for path in glob.glob(os.path.join(run_dir, "grads-epoch*.pt")):
        match = re.search(r"grads-epoch(\d+)\.pt$", path)
        if match:
            files[int(match.group(1))] = path
    return dict(sorted(files.items()))


def plot_singular_values(result: dict, epoch: int, stem: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    svs = result["singular_values"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter(np.arange(1, len(svs) + 1), svs, color="tab:blue", zorder=3)
    ax.set_yscale("log")
    ax.axhline(result["eps"], color="tab:red", label=f"$\\epsilon_{{{epoch}}}$ = {result['eps']:.3g}")
    ax.set_xticks(np.arange(1, len(svs) + 1))
    ax.set_xlabel("Singular value index")
    ax.set_ylabel("Singular value (log scale)")
    ax.set_title(f"Epoch {epoch}: $\\epsilon$-rank {result['eps_rank']} of {len(svs)}")
    ax.legend()
    fig.tight_layout()
    for extension in ("png", "pdf"):
        fig.savefig(f"{stem}.{extension}", dpi=110 if extension == "png" else None)
    plt.close(fig)


def plot_rank_histogram(ranks: list[int], dimension: int, stem: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.hist(ranks, bins=np.arange(0.5, dimension + 1.5, 1), color="tab:blue", edgecolor="white")
    median = sorted(ranks)[len(ranks) // 2]  # the paper's median: the middle of the sorted ranks
    ax.axvline(median, color="tab:red", label=f"Median = {median}")
    ax.set_xlabel("$\\epsilon_k$-rank of SGD matrix $X^k$")
    ax.set_ylabel("Number of epochs")
    ax.legend()
    fig.tight_layout()
    for extension in ("png", "pdf"):
        fig.savefig(f"{stem}.{extension}", dpi=110 if extension == "png" else None)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run folder holding grads-epochE.pt files")
    parser.add_argument("--epoch", type=int, default=None, help="epoch whose singular values to draw")
    parser.add_argument("--out", default=None, help="output folder (default: RUN/spectrum)")
    parser.add_argument("--shift", type=float, default=PAPER_SHIFT, help="the shift s (default: the paper's)")
    args = parser.parse_args()

    files = saved_epochs(args.run)
    if not files:
        print(f"grad_spectrum: no grads-epochE.pt files in {args.run} (run khsgd_train with "
              f"--save_grads)", file=sys.stderr)
        return 1
    epoch = args.epoch if args.epoch is not None else next(iter(files))
    if epoch not in files:
        print(f"grad_spectrum: epoch {epoch} was not saved; saved: {list(files)}", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.run, "spectrum")
    os.makedirs(out, exist_ok=True)
    results = {e: analyse(load_pt(path), args.shift) for e, path in files.items()}
    dimension = len(next(iter(results.values()))["singular_values"])
    with open(os.path.join(out, "spectrum.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "eps", "eps_rank"] + [f"sv_{i + 1}" for i in range(dimension)])
        for e, r in results.items():
            writer.writerow([e, f"{r['eps']:.9g}", r["eps_rank"]] + [f"{v:.9g}" for v in r["singular_values"]])
    plot_singular_values(results[epoch], epoch, os.path.join(out, f"singular_values_epoch_{epoch}"))
    ranks = [r["eps_rank"] for r in results.values()]
    plot_rank_histogram(ranks, dimension, os.path.join(out, "eps_rank_histogram"))
    for e, r in results.items():
        print(f"epoch {e}: eps {r['eps']:.6g}, eps-rank {r['eps_rank']} of {dimension}, "
              f"largest singular value {r['singular_values'][0]:.6g}")
    print(f"median eps-rank over {len(ranks)} epoch(s): {sorted(ranks)[len(ranks) // 2]}; files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
