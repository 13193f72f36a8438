#!/usr/bin/env python3
"""Table of a results folder: per setting, worker count and sorter, the seeds done, the final
full-train loss and test accuracy (mean +- std over seeds) and the seconds per training epoch.

A run whose loss became NaN or infinite (diverged: summary.json says so, or its metrics do) is not
counted as done, and its numbers stay out of the means; the "diverged" column counts such seeds
and names the first epoch that went bad.

    python3 plots/summarize.py RESULTS_DIR [--csv FILE]
"""

from __future__ import annotations

import argparse
import csv
import sys

import numpy as np

from khsgd_results import (KHSGD, SORTER_LABELS, SORTER_ORDER, describe_setting, find_runs,
                           group_by_setting, worker_counts)


def summarize(root: str) -> list[dict]:
    rows = []
    for setting, runs in group_by_setting(find_runs(root)).items():
        sources = sorted({r.source for r in runs}, key=lambda s: (s != KHSGD, s))
        sorters = SORTER_ORDER + sorted({r.sorter for r in runs} - set(SORTER_ORDER))
        for workers, source, sorter in [(w, source, sorter) for w in worker_counts(runs)
                                        for source in sources for sorter in sorters]:
            mine = [r for r in runs
                    if r.sorter == sorter and r.source == source and r.workers == workers]
            if not mine:
                continue
            diverged = [r for r in mine if r.diverged]
            done = [r for r in mine if r.finished and not r.diverged]
            # The means are over the sane runs: one NaN would make every mean NaN.
            final = done or [r for r in mine if not r.diverged] or mine
            loss = np.array([r.metrics["train_loss"][-1] for r in final if r.epochs_done])
            acc = np.array([r.metrics["test_acc"][-1] for r in final if r.epochs_done])
            seconds = np.array([np.median(r.metrics["train_seconds"]) for r in final
                                if r.epochs_done and "train_seconds" in r.metrics])
            std = (lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0)
            label = SORTER_LABELS.get(sorter, sorter)
            rows.append({
                "setting": describe_setting(setting),
                "workers": "?" if workers is None else workers,
                "sorter": sorter,
                "source": source,
                "label": f"{label} ({source})" if len(sources) > 1 else label,
                "seeds_done": len(done),
                "seeds_started": len(mine),
                "seeds": " ".join(str(r.seed) for r in sorted(done, key=lambda r: r.seed)),
                "final_train_loss": float(loss.mean()) if len(loss) else float("nan"),
                "final_train_loss_std": std(loss) if len(loss) else float("nan"),
                "final_test_acc": float(acc.mean()) if len(acc) else float("nan"),
                "final_test_acc_std": std(acc) if len(acc) else float("nan"),
                "seconds_per_epoch": float(seconds.mean()) if len(seconds) else float("nan"),
                "seeds_diverged": len(diverged),
                "first_nonfinite_epoch": min((r.first_nonfinite_epoch for r in diverged),
                                             default=""),
            })
    return rows


def print_table(rows: list[dict], out=sys.stdout) -> None:
    setting = None
    width = max([17] + [len(row["label"]) for row in rows])
    for row in rows:
        if row["setting"] != setting:
            setting = row["setting"]
            print(f"\n{setting}", file=out)
            print(f"  {'workers':>7}  {'sorter':<{width}} {'seeds done':>10}  "
                  f"{'final train loss':>22}  {'final test acc (%)':>20}  {'s/epoch':>9}  "
                  f"diverged", file=out)
        seeds = f"{row['seeds_done']}/{row['seeds_started']}"
        diverged = (f"{row['seeds_diverged']} (from epoch {row['first_nonfinite_epoch']})"
                    if row["seeds_diverged"] else "-")
        print(f"  {row['workers']:>7}  {row['label']:<{width}} {seeds:>10}  "
              f"{row['final_train_loss']:>11.6f} +- {row['final_train_loss_std']:<8.6f}  "
              f"{100 * row['final_test_acc']:>9.3f} +- {100 * row['final_test_acc_std']:<6.3f}  "
              f"{row['seconds_per_epoch']:>9.4f}  {diverged}", file=out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a results folder (or one EXP-EPOCHS folder in it)")
    parser.add_argument("--csv", help="also write the table as CSV")
    args = parser.parse_args()
    rows = summarize(args.results)
    if not rows:
        print(f"summarize: no runs (config.json + metrics.csv, or the reference's results.pt) "
              f"under {args.results}", file=sys.stderr)
        return 1
    print_table(rows)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
