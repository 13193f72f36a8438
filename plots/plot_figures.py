#!/usr/bin/env python3
"""The paper's two figures from a results folder (Low-Rank Thinning, Figure 4):

  loss_acc_vs_epochs.{png,pdf}   full-train loss and test accuracy against epochs
  loss_acc_vs_seconds.{png,pdf}  the same against cumulative training seconds

one line per sorter, the mean over seeds with a +-1 standard deviation band, and one row of
panels per worker count when the runs have several (a worker-count study, sweep.sh --ranks "1 2 4").

    python3 plots/plot_figures.py RESULTS_DIR [--out DIR] [--title TEXT]
        [--loss_range LO HI] [--acc_range LO HI] [--skip_epochs K]

RESULTS_DIR may also hold the Python reference's run folders (main-LR-HMDA.py's results.pt and
time/time-R.pt); a folder holding both draws a line per sorter and source, the reference's dashed
and labelled "(reference)", khsgd's labelled "(khsgd)".

Axis ranges follow the data from epoch K+1 on (K = 1 by default: the first epoch's loss would
flatten everything else); --loss_range 0.3345 0.3395 --acc_range 81.95 82.45 gives the paper's
ranges for the real data. A results folder holding several settings (other lr, B or data)
needs --setting N to pick one; the list is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from khsgd_results import (KHSGD, SORTER_LABELS, SORTER_ORDER, describe_setting,  # noqa: E402
                           describe_workers, find_runs, group_by_setting, mean_std, worker_counts)

COLORS = {"D-RR": "tab:gray", "CD-GraB": "tab:blue", "SBW": "tab:green", "KH-SGD": "tab:red"}
# The other sorters' colours, given out by name order so that no two curves share one.
OTHER_COLORS = ["tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def color_of(sorter, sorters):
    """The paper's colour for its sorters; the others' by their place among `sorters`."""
    if sorter in COLORS:
        return COLORS[sorter]
    others = sorted(set(sorters) - set(COLORS))
    return OTHER_COLORS[others.index(sorter) % len(OTHER_COLORS)]


def curves(runs):
    """Per (source, sorter): its legend label, x (epochs), cumulative seconds (None when its
    runs did not record times), and mean/std of loss and accuracy (in %)."""
    out = {}
    sources = sorted({r.source for r in runs}, key=lambda s: (s != KHSGD, s))
    for source in sources:
        for sorter in SORTER_ORDER + sorted({r.sorter for r in runs} - set(SORTER_ORDER)):
            mine = [r for r in runs if r.source == source and r.sorter == sorter and r.epochs_done > 0]
            if not mine:
                continue
            label = SORTER_LABELS.get(sorter, sorter)
            loss_mean, loss_std = mean_std([r.metrics["train_loss"] for r in mine])
            acc_mean, acc_std = mean_std([100 * r.metrics["test_acc"] for r in mine])
            timed = all("train_seconds" in r.metrics for r in mine)
            seconds = mean_std([np.cumsum(r.metrics["train_seconds"]) for r in mine])[0] if timed else None
            out[(source, sorter)] = {
                "label": f"{label} ({source})" if len(sources) > 1 else label,
                "sorter": sorter,
                "source": source,
                "epochs": np.arange(1, len(loss_mean) + 1),
                "seconds": seconds,
                "loss": (loss_mean, loss_std),
                "acc": (acc_mean, acc_std),
                "seeds": len(mine),
            }
    return out


def data_range(series, skip):
    """(low, high) covering mean +- std of every curve from index `skip` on, padded by 5 %."""
    values = []
    for mean, std in series:
        start = min(skip, len(mean) - 1)
        values.extend([(mean - std)[start:], (mean + std)[start:]])
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    pad = 0.05 * (high - low) if high > low else max(abs(high) * 1e-3, 1e-6)
    return low - pad, high + pad


def draw(panels, x_key, x_label, path_stem, title, loss_range, acc_range, skip, dpi):
    """panels: (worker count, curves) pairs, a row of a loss and an accuracy panel each."""
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 4.2 * len(panels)), squeeze=False)
    for (workers, curve_set), (ax_loss, ax_acc) in zip(panels, axes):
        for c in curve_set.values():
            x = c[x_key]
            if x is None:
                continue
            color = color_of(c["sorter"], [other["sorter"] for other in curve_set.values()])
            style = "-" if c["source"] == KHSGD else "--"
            for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
                mean, std = c[key]
                n = min(len(x), len(mean))
                ax.plot(x[:n], mean[:n], style, color=color, label=c["label"])
                ax.fill_between(x[:n], (mean - std)[:n], (mean + std)[:n], color=color,
                                alpha=0.2, linewidth=0)
        ax_loss.set_ylim(*(loss_range or data_range([c["loss"] for c in curve_set.values()], skip)))
        ax_acc.set_ylim(*(acc_range or data_range([c["acc"] for c in curve_set.values()], skip)))
        if x_key == "epochs":
            last = max(len(c["epochs"]) for c in curve_set.values())
            for ax in (ax_loss, ax_acc):
                ax.set_xlim(1 + min(skip, last - 1), last)
        ax_loss.set_ylabel("Full train loss")
        ax_acc.set_ylabel("Test accuracy (%)")
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel(x_label)
            ax.grid(alpha=0.3)
            if len(panels) > 1:
                ax.set_title(describe_workers(workers), fontsize=10)
        ax_acc.legend(loc="lower right")
    fig.suptitle(textwrap.fill(title, 150), fontsize=10)
    fig.tight_layout()
    for extension in ("png", "pdf"):
        fig.savefig(f"{path_stem}.{extension}", dpi=dpi if extension == "png" else None)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a results folder (or one EXP-EPOCHS folder in it)")
    parser.add_argument("--out", default=None, help="output folder (default: RESULTS/figures)")
    parser.add_argument("--setting", type=int, default=None, help="which setting to plot (see the list)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--loss_range", type=float, nargs=2, default=None)
    parser.add_argument("--acc_range", type=float, nargs=2, default=None, help="in percent")
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the PNG files")
    parser.add_argument("--skip_epochs", type=int, default=1,
                        help="epochs left out when choosing the axis ranges (default 1)")
    args = parser.parse_args()

    groups = list(group_by_setting(find_runs(args.results)).items())
    if not groups:
        print(f"plot_figures: no runs (config.json + metrics.csv, or the reference's results.pt) "
              f"under {args.results}", file=sys.stderr)
        return 1
    if args.setting is None and len(groups) > 1:
        print("plot_figures: the folder holds several settings; pick one with --setting N:", file=sys.stderr)
        for i, (setting, runs) in enumerate(groups):
            print(f"  {i}: {describe_setting(setting)} ({len(runs)} runs)", file=sys.stderr)
        return 2
    index = args.setting or 0
    if not 0 <= index < len(groups):
        print(f"plot_figures: --setting {index} is not in 0..{len(groups) - 1}", file=sys.stderr)
        return 2
    setting, runs = groups[index]
    panels = [(w, curves([r for r in runs if r.workers == w])) for w in worker_counts(runs)]
    out = args.out or os.path.join(args.results, "figures")
    os.makedirs(out, exist_ok=True)
    seeds = "; ".join(
        (f"{describe_workers(w)}: " if len(panels) > 1 else "") +
        ", ".join(f"{c['label']} {c['seeds']}" for c in curve_set.values())
        for w, curve_set in panels)
    workers = ", ".join(describe_workers(w) for w, _ in panels)
    title = args.title or f"{describe_setting(setting)}, {workers}; seeds per sorter: {seeds}"
    draw(panels, "epochs", "Epoch", os.path.join(out, "loss_acc_vs_epochs"), title,
         args.loss_range, args.acc_range, args.skip_epochs, args.dpi)
    draw(panels, "seconds", "Cumulative training time (s)", os.path.join(out, "loss_acc_vs_seconds"),
         title, args.loss_range, args.acc_range, args.skip_epochs, args.dpi)
    for name in ("loss_acc_vs_epochs", "loss_acc_vs_seconds"):
        for extension in ("png", "pdf"):
            print(os.path.join(out, f"{name}.{extension}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
