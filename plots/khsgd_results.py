"""Reading khsgd_train's run folders (and torch.save files) without PyTorch.

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
import zipfile
from dataclasses import dataclass, field

import numpy as np

# The paper's legend labels (Low-Rank Thinning, Figure 4).
SORTER_LABELS = {
    "D-RR": "RR",
    "CD-GraB": "CD-GraB: Greedy",
    "SBW": "CD-GraB: SBW",
    "KH-SGD": "KH-SGD",
}
SORTER_ORDER = ["D-RR", "CD-GraB", "SBW", "KH-SGD"]
METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                  "train_seconds", "eval_seconds"]


@dataclass
class Run:
    """One run folder: its settings and its per-epoch metrics (columns as numpy arrays)."""

    path: str
    config: dict
    metrics: dict = field(default_factory=dict)
    finished: bool = False

    @property
    def sorter(self) -> str:
        return self.config["sorter"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def workers(self) -> int:
        """Ranks, or workers inside one process (--in_process): the data is split this many ways."""
        return int(self.config.get("node_cnt", 1))

    @property
    def epochs_done(self) -> int:
        return len(self.metrics.get("epoch", []))

    def setting(self) -> tuple:
        """What must agree for runs to be compared (everything but sorter, seed and workers);
        runs are averaged over seeds within one worker count."""
        c = self.config
        return (c.get("dataset"), int(c.get("train_rows", 0)), float(c["lr"]), int(c["B"]),
                float(c.get("momentum", 0.9)), int(c["epochs"]))


def describe_setting(setting: tuple) -> str:
    dataset, rows, lr, batch, momentum, epochs = setting
    return (f"{dataset} ({rows} train rows), lr {lr:g}, B {batch}, momentum {momentum:g}, "
            f"{epochs} epochs")


def worker_counts(runs: list[Run]) -> list[int]:
    return sorted({r.workers for r in runs})


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
    summary_path = os.path.join(path, "summary.json")
    if os.path.isfile(summary_path):
        with open(summary_path) as handle:
            run.finished = bool(json.load(handle).get("finished", False))
    return run


def find_runs(root: str) -> list[Run]:
    """Every run folder (one holding config.json and metrics.csv) below `root`."""
    runs = []
    for folder, _, files in os.walk(root):
        if "config.json" in files and "metrics.csv" in files:
            run = read_run(folder)
            if run is not None:
                runs.append(run)
    return sorted(runs, key=lambda r: (r.setting(), r.workers, r.sorter, r.seed))


def group_by_setting(runs: list[Run]) -> dict:
    groups: dict = collections.OrderedDict()
    for run in runs:
        groups.setdefault(run.setting(), []).append(run)
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
