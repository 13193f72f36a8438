"""Reading run folders (and torch.save files) without PyTorch: khsgd_train's, and the Python
reference's (main-LR-HMDA.py: results.pt and time/time-R.pt in a folder named
LR-hmda-SORTER-lr-LR-B-B-seed-SEED), so that both can be drawn in one figure.

Shared by the sweep summary (plots/summarize.py), the figures (plots/plot_figures.py) and the
gradient spectrum tool (plots/grad_spectrum.py). Standard library and numpy only, so that
Debian's python3-numpy and python3-matplotlib are all the plots need.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field

import numpy as np

# The paper's legend labels (Low-Rank Thinning, Figure 4) and order. A run's sorter is the name
# its config.json records, so every sorter khsgd_train knows (khsgd_train --list-sorters) is read
# and drawn; those outside the paper come after its four, by name, labelled by their name.
SORTER_LABELS = {
    "D-RR": "RR",
    "CD-GraB": "CD-GraB: Greedy",
    "SBW": "CD-GraB: SBW",
    "KH-SGD": "KH-SGD",
}
SORTER_ORDER = ["D-RR", "CD-GraB", "SBW", "KH-SGD"]
METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                  "train_seconds", "eval_seconds"]
# Where a run comes from: this program, or the Python reference's files.
KHSGD, REFERENCE = "khsgd", "reference"
# The authors' notebook still names KH-SGD by its working title.
SORTER_ALIASES = {"CD-OH-opt": "KH-SGD"}


@dataclass
class Run:
    """One run folder: its settings and its per-epoch metrics (columns as numpy arrays)."""

    path: str
    config: dict
    metrics: dict = field(default_factory=dict)
    finished: bool = False
    source: str = KHSGD
    # The first epoch whose train or test loss is not finite (summary.json's
    # first_nonfinite_epoch, else read off the metrics), None while the run has not diverged.
    first_nonfinite_epoch: int | None = None

    @property
    def diverged(self) -> bool:
        """Its loss became NaN or infinite: its final numbers are no result."""
        return self.first_nonfinite_epoch is not None

    @property
    def sorter(self) -> str:
        return self.config["sorter"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def workers(self) -> int | None:
        """Ranks, or workers inside one process (--in_process): how many ways the data is split.
        None where the run's files do not say."""
        nodes = self.config.get("node_cnt")
        return None if nodes is None else int(nodes)

    @property
    def epochs_done(self) -> int:
        return len(self.metrics.get("epoch", []))

    def setting(self) -> tuple:
        """What must agree for runs to be compared (everything but sorter, seed and the worker
        count: runs are averaged over seeds within one worker count); None where the run's files
        do not say (a reference run's row count)."""
        c = self.config
        known = (lambda key, kind: None if c.get(key) is None else kind(c[key]))
        return (c.get("dataset"), known("train_rows", int), float(c["lr"]), int(c["B"]),
                float(c.get("momentum", 0.9)), int(c["epochs"]))


def describe_setting(setting: tuple) -> str:
    dataset, rows, lr, batch, momentum, epochs = setting
    shown = (lambda value: "?" if value is None else value)
    return (f"{dataset} ({shown(rows)} train rows), lr {lr:g}, B {batch}, momentum {momentum:g}, "
            f"{epochs} epochs")


def worker_counts(runs: list[Run]) -> list:
    """The runs' worker counts, ascending (an unknown count, None, last)."""
    return sorted({r.workers for r in runs}, key=lambda w: (w is None, w or 0))


def describe_workers(workers: int | None) -> str:
    return "? workers" if workers is None else f"{workers} worker{'s' if workers > 1 else ''}"


def read_metrics(path: str) -> dict:
    columns: dict = {name: [] for name in METRIC_COLUMNS}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for name in METRIC_COLUMNS:
                if name in row and row[name] != "":
                    columns[name].append(float(row[name]))
    return {name: np.asarray(values) for name, values in columns.items()}


def read_run(path: str) -> Run | None:
    config_path = os.path.join(path, "config.json")
    metrics_path = os.path.join(path, "metrics.csv")
    if not (os.path.isfile(config_path) and os.path.isfile(metrics_path)):
        return None
    with open(config_path) as handle:
        config = json.load(handle)
    run = Run(path=path, config=config, metrics=read_metrics(metrics_path))
    run.first_nonfinite_epoch = first_nonfinite_epoch(run.metrics)
    summary_path = os.path.join(path, "summary.json")
    if os.path.isfile(summary_path):
        with open(summary_path) as handle:
            summary = json.load(handle)
        run.finished = bool(summary.get("finished", False))
        if summary.get("first_nonfinite_epoch") is not None:
            run.first_nonfinite_epoch = int(summary["first_nonfinite_epoch"])
    return run


def first_nonfinite_epoch(metrics: dict) -> int | None:
    """The first epoch whose train or test loss is NaN or infinite; None if there is none (also for
    runs written before summary.json recorded it, and for unfinished runs)."""
    losses = [metrics[name] for name in ("train_loss", "test_loss") if len(metrics.get(name, []))]
    if not losses:
        return None
    count = min(len(values) for values in losses)
    bad = ~np.all([np.isfinite(values[:count]) for values in losses], axis=0)
    if not bad.any():
        return None
    epochs = metrics.get("epoch", [])
    first = int(np.argmax(bad))
    return int(epochs[first]) if first < len(epochs) else first + 1


# main-LR-HMDA.py's folder name: LR-hmda-{sorter}-lr-{lr}-B-{B}-seed-{seed}
_REFERENCE_FOLDER = re.compile(r"^LR-(?P<dataset>[a-z]+)-(?P<sorter>.+?)-lr-(?P<lr>.+)-B-(?P<B>\d+)"
                               r"-seed-(?P<seed>-?\d+)$")


def read_reference_run(path: str) -> Run | None:
    """A run folder of the Python reference: results.pt ({"train"/"test": {"loss", "acc"}}, one
    entry per epoch) and time/time-R.pt (one file per rank; the notebook's time axis is the sum
    of each epoch's "epoch-E" entries of rank 0)."""
    match = _REFERENCE_FOLDER.match(os.path.basename(os.path.normpath(path)))
    if match is None:
        return None
    results = load_pt(os.path.join(path, "results.pt"))
    losses = np.asarray([float(v) for v in results["train"]["loss"]])
    time_folder = os.path.join(path, "time")
    time_files = sorted(f for f in os.listdir(time_folder) if re.fullmatch(r"time-\d+\.pt", f)) \
        if os.path.isdir(time_folder) else []
    metrics = {
        "epoch": np.arange(1, len(losses) + 1, dtype=float),
        "train_loss": losses,
        "train_acc": np.asarray([float(v) for v in results["train"]["acc"]]),
        "test_loss": np.asarray([float(v) for v in results["test"]["loss"]]),
        "test_acc": np.asarray([float(v) for v in results["test"]["acc"]]),
    }
    if "time-0.pt" in time_files:
        times = load_pt(os.path.join(time_folder, "time-0.pt"))["time"]
        metrics["train_seconds"] = np.asarray(
            [float(np.sum(times[f"epoch-{e}"])) for e in range(1, len(losses) + 1)])
    config = {
        "sorter": SORTER_ALIASES.get(match["sorter"], match["sorter"]),
        "seed": int(match["seed"]),
        "lr": float(match["lr"]),
        "B": int(match["B"]),
        "epochs": len(losses),
        "dataset": match["dataset"],
        "node_cnt": len(time_files) or None,  # every rank saves its own time file
        "momentum": 0.9,  # main-LR-HMDA.py passes momentum=0.9 whatever --momentum says
    }
    # results.pt is saved once, after the last epoch.
    return Run(path=path, config=config, metrics=metrics, finished=True, source=REFERENCE,
               first_nonfinite_epoch=first_nonfinite_epoch(metrics))


def find_runs(root: str) -> list[Run]:
    """Every run folder below `root`: khsgd's (config.json and metrics.csv) and the reference's
    (results.pt without config.json)."""
    runs = []
    for folder, _, files in os.walk(root):
        if "config.json" in files and "metrics.csv" in files:
            run = read_run(folder)
        elif "results.pt" in files:
            run = read_reference_run(folder)
        else:
            continue
        if run is not None:
            runs.append(run)
    return sorted(runs, key=lambda r: (str(r.setting()), r.workers or 0, r.source, r.sorter, r.seed))


def _agrees(known: tuple, partial: tuple) -> bool:
    return all(p is None or p == k for k, p in zip(known, partial))


def group_by_setting(runs: list[Run]) -> dict:
    """Runs by setting. A run whose files leave part of its setting open (None: a reference
    run's row count) joins every group that agrees with the rest of it."""
    groups: dict = collections.OrderedDict()
    complete = [r for r in runs if None not in r.setting()]
    partial = [r for r in runs if None in r.setting()]
    for run in complete:
        groups.setdefault(run.setting(), []).append(run)
    for run in partial:
        homes = [s for s in groups if None not in s and _agrees(s, run.setting())]
        for setting in homes or [run.setting()]:
            groups.setdefault(setting, []).append(run)
    return groups


def mean_std(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (over seeds, ddof = 1 when there are two or more) of equally
    long series, cut to the shortest."""
    length = min(len(r) for r in rows)
    stacked = np.stack([r[:length] for r in rows])
    std = stacked.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(length)
    return stacked.mean(axis=0), std


# --- torch.save files -------------------------------------------------------------------------

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        if name not in _DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage type torch.{name}")
        self.dtype = np.dtype(_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *unused):
    itemsize = storage.dtype.itemsize
    if len(size) == 0:
        return storage[offset].copy()
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def load_pt(path: str):
    """The object saved by Python's torch.save (zip container): tensors become numpy arrays,
    tuples and lists stay tuples and lists. Storages may live on any device (cuda:0 included)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise ValueError(f"{path}: no data.pkl in the archive; not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict = {}

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if module == "torch._utils" and name == "_rebuild_tensor_v2":
                    return _rebuild_tensor
                if module == "torch" and name.endswith("Storage"):
                    return _StorageType(name)
                if module == "collections" and name == "OrderedDict":
                    return collections.OrderedDict
                raise pickle.UnpicklingError(f"{path}: unsupported object {module}.{name}")

            def persistent_load(self, pid):
                kind, storage_type, key, _location, _numel = pid
                if kind != "storage":
                    raise pickle.UnpicklingError(f"{path}: unsupported persistent id {kind}")
                if key not in storages:
                    raw = archive.read(f"{prefix}data/{key}")
                    storages[key] = np.frombuffer(raw, dtype=storage_type.dtype)
                return storages[key]

        with archive.open(pickles[0]) as handle:
            return Unpickler(handle).load()


# The paper's shift for the spread of the gradient matrix (Low-Rank Thinning, supplement):
# s = sqrt(9 e ln(48 821 400) ln(48 821 400 (1 + ln(244 107 / 2)))).
PAPER_SHIFT = math.sqrt(9 * math.e * math.log(48821400)
                        * math.log(48821400 * (1 + math.log(244107 / 2))))
