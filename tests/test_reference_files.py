#!/usr/bin/env python3
"""The Python reference's files as Python itself reads them (run by ctest): results.pt and
time/time-R.pt loaded with torch.load (Debian's python3-torch) and checked against metrics.csv,
time-rankR.csv and the reference's own golden numbers; a resumed run's files; a figure drawn from
a mix of reference-format run folders and khsgd's. Needs KHSGD_TRAIN and KHSGD_SOURCE_DIR in the
environment; exits 77 (ctest: skipped) when PyTorch is not installed."""

from __future__ import annotations

import csv
import io
import os
import pickletools
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

try:
    import torch
except ImportError as error:
    print(f"skipped: PyTorch is not importable ({error}); install python3-torch")
    sys.exit(77)

import numpy as np  # noqa: E402

SOURCE = os.environ.get("KHSGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
TRAIN = os.environ.get("KHSGD_TRAIN", os.path.join(SOURCE, "build", "khsgd_train"))
GOLDEN = os.path.join(SOURCE, "tests", "data", "golden")
sys.path.insert(0, os.path.join(SOURCE, "plots"))

import khsgd_results  # noqa: E402
import plot_figures  # noqa: E402
import summarize  # noqa: E402

SORTERS = ["D-RR", "CD-GraB", "SBW", "KH-SGD"]
TRAIN_ROWS, TEST_ROWS = 20000, 4999  # the golden data set: N' of 20 011 rows at B = 16, all test rows
TIMER_KEYS = ["time", "cuda-max", "cuda-current", "ram"]


def train(results, sorter, *extra, env=None, ranks=1):
    args = ["--sorter", sorter, "--seed", "1", "--lr", "5e-3", "--epochs", "3", "--data_dir",
            os.path.join(GOLDEN, "data"), "--results_dir", results, "--quiet", "--device", "cpu",
            *extra]
    command = ([os.path.join(SOURCE, "scripts", "launch.sh"), str(ranks), "--"] if ranks > 1 else [TRAIN])
    return subprocess.run(command + args, capture_output=True, text=True,
                          env=dict(os.environ, KHSGD_TRAIN=TRAIN, **(env or {})))


def run_folder(results, sorter, ranks=1):
    return os.path.join(results, "LR-HMDA-3", f"LR-hmda-{sorter}-node-{ranks}-lr-0.005-B-16-seed-1")


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def load(path, **kwargs):
    return torch.load(path, map_location="cpu", **kwargs)


def pickle_vocabulary(path):
    """The pickle opcodes and globals of a torch.save file: what decides which unpicklers accept it."""
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        ops, names = set(), set()
        for op, arg, _ in pickletools.genops(archive.read(name)):
            ops.add(op.name)
            if op.name == "GLOBAL":
                names.add(arg)
    return ops, names


def notebook_time_axis(time_file, epochs):
    """The authors' notebook's time axis: per epoch the sum of time['time'][f'epoch-{e}'], summed up."""
    one_time = [sum(time_file["time"][f"epoch-{e}"]) for e in range(1, epochs + 1)]
    return torch.cumsum(torch.tensor(one_time), dim=0)


class RunsInATemporaryFolder(unittest.TestCase):
    """A test class whose runs, made once by prepare(), live in cls.tmp."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="khsgd-reference-files-")
        cls.prepare()

    @classmethod
    def prepare(cls):
        raise NotImplementedError

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)


class WrittenFiles(RunsInATemporaryFolder):
    """khsgd's results.pt and time/time-R.pt as torch.load returns them."""

    @classmethod
    def prepare(cls):
        for sorter in ("KH-SGD", "D-RR"):
            result = train(cls.tmp, sorter)
            assert result.returncode == 0, result.stderr

    def test_results_hold_the_metrics_as_the_reference_types(self):
        folder = run_folder(self.tmp, "KH-SGD")
        results = load(os.path.join(folder, "results.pt"))
        self.assertIs(type(results), dict)
        self.assertEqual(list(results), ["train", "test"])
        metrics = read_csv(os.path.join(folder, "metrics.csv"))
        golden = read_csv(os.path.join(GOLDEN, "cpu", "n1-KH-SGD", "metrics.csv"))
        for split, rows in (("train", TRAIN_ROWS), ("test", TEST_ROWS)):
            self.assertIs(type(results[split]), dict)
            self.assertEqual(list(results[split]), ["loss", "acc"])
            losses, accuracies = results[split]["loss"], results[split]["acc"]
            self.assertIs(type(losses), list)
            self.assertEqual(len(losses), 3)
            self.assertEqual(len(accuracies), 3)
            for e, (loss, acc) in enumerate(zip(losses, accuracies)):
                # HMDA_eval's (total_loss / len, total_correct / len): a 0-dim float32 CPU tensor
                # and a Python float, the exact fraction of correct rows.
                self.assertIsInstance(loss, torch.Tensor)
                self.assertEqual((loss.dim(), loss.dtype, loss.device.type), (0, torch.float32, "cpu"))
                self.assertFalse(loss.requires_grad)
                self.assertIs(type(acc), float)
                self.assertEqual(loss.item(), float(np.float32(metrics[e][f"{split}_loss"])))
                self.assertAlmostEqual(acc, float(metrics[e][f"{split}_acc"]), delta=5e-9)
                self.assertEqual(acc * rows, round(acc * rows))
                self.assertEqual(acc, round(acc * rows) / rows)
                # And the reference's own numbers for this seed and data.
                self.assertAlmostEqual(loss.item(), float(golden[e][f"{split}_loss"]), delta=1e-4)
                self.assertAlmostEqual(acc, float(golden[e][f"{split}_acc"]), delta=5e-4)

    def test_time_file_has_the_event_timers_layout(self):
        for sorter, first_epoch_labels in (
                ("KH-SGD", ["communication", "dataset", "forward-backward"]),
                ("D-RR", ["dataset", "forward-backward", "communication"])):
            folder = run_folder(self.tmp, sorter)
            times = load(os.path.join(folder, "time", "time-0.pt"))
            self.assertIs(type(times), dict)
            self.assertEqual(list(times), TIMER_KEYS)
            labels = ["SGD", "sorter", "epoch-1", *first_epoch_labels, "epoch-2", "epoch-3"]
            self.assertEqual(list(times["time"]), labels, sorter)
            rows = read_csv(os.path.join(folder, "time-rank0.csv"))
            columns = {"sorter": "sorter", "communication": "communication", "dataset": "dataset",
                       "forward-backward": "forward_backward", "SGD": "sgd"}
            for label, tensor in times["time"].items():
                self.assertIsInstance(tensor, torch.Tensor)
                self.assertEqual((tensor.dim(), tensor.dtype), (1, torch.float32))
                if label.startswith("epoch-"):
                    expected = [rows[int(label[6:]) - 1]["train_seconds"]]
                else:
                    expected = [row[columns[label]] for row in rows]
                self.assertEqual(tensor.tolist(), [float(np.float32(v)) for v in expected], label)
            for memory in TIMER_KEYS[1:]:
                self.assertEqual(list(times[memory]), labels)
                for label, tensor in times[memory].items():
                    self.assertEqual(tensor.shape, times["time"][label].shape)
                    self.assertTrue(torch.isnan(tensor).all(), f"{memory}/{label}: not measured")

    def test_pickles_use_what_pythons_torch_save_uses(self):
        """Every opcode and global of our files is one that Python's torch.save writes for the same
        structure, so every torch.load (weights_only or not, any version) treats both alike."""
        folder = run_folder(self.tmp, "KH-SGD")
        ours = load(os.path.join(folder, "results.pt"))
        twins = {"results.pt": ours, "time/time-0.pt": load(os.path.join(folder, "time", "time-0.pt"))}
        for name, obj in twins.items():
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            python_file = os.path.join(self.tmp, "python-" + os.path.basename(name))
            with open(python_file, "wb") as handle:
                handle.write(buffer.getvalue())
            ops, names = pickle_vocabulary(os.path.join(folder, name))
            python_ops, python_names = pickle_vocabulary(python_file)
            self.assertLessEqual(ops, python_ops, name)
            self.assertEqual(names, python_names, name)
            self.assertFalse(any(n.startswith("torch.jit") for n in names), names)
            # weights_only: the same outcome as for Python's own file (1.13 has no BINFLOAT there).
            outcomes = []
            for path in (os.path.join(folder, name), python_file):
                try:
                    load(path, weights_only=True)
                    outcomes.append("loads")
                except Exception as error:  # noqa: BLE001 - the message is what is compared
                    outcomes.append(str(error).splitlines()[-1])
            self.assertEqual(outcomes[0], outcomes[1], name)
        # The timer file holds tensors only: it loads with weights_only on every version.
        load(os.path.join(folder, "time", "time-0.pt"), weights_only=True)

    def test_read_as_the_authors_notebook_reads_them(self):
        folder = run_folder(self.tmp, "KH-SGD")
        r = load(os.path.join(folder, "results.pt"))
        times = load(os.path.join(folder, "time", "time-0.pt"))
        losses = torch.vstack([torch.tensor(r["train"]["loss"])]).numpy()
        accuracies = torch.vstack([100 * torch.tensor(r["test"]["acc"])]).numpy()
        metrics = read_csv(os.path.join(folder, "metrics.csv"))
        np.testing.assert_allclose(losses[0], [float(m["train_loss"]) for m in metrics], rtol=1e-7)
        np.testing.assert_allclose(accuracies[0], [100 * float(m["test_acc"]) for m in metrics], rtol=1e-7)
        seconds = np.cumsum([np.float32(row["train_seconds"])
                             for row in read_csv(os.path.join(folder, "time-rank0.csv"))])
        np.testing.assert_allclose(notebook_time_axis(times, 3).numpy(), seconds, rtol=1e-6)

    def test_a_resumed_run_holds_every_epoch(self):
        tmp = tempfile.mkdtemp(prefix="khsgd-reference-resume-")
        try:
            stopped = train(tmp, "SBW", "--checkpoint_every", "1", env={"KHSGD_STOP_AFTER_EPOCH": "1"})
            self.assertEqual(stopped.returncode, 9, stopped.stderr)
            folder = run_folder(tmp, "SBW")
            self.assertEqual(len(load(os.path.join(folder, "results.pt"))["train"]["loss"]), 1)
            self.assertEqual([k for k in load(os.path.join(folder, "time", "time-0.pt"))["time"]
                              if k.startswith("epoch-")], ["epoch-1"])
            resumed = train(tmp, "SBW", "--resume")
            self.assertEqual(resumed.returncode, 0, resumed.stderr)
            whole = train(os.path.join(tmp, "whole"), "SBW")
            self.assertEqual(whole.returncode, 0, whole.stderr)
            a = load(os.path.join(folder, "results.pt"))
            b = load(os.path.join(run_folder(os.path.join(tmp, "whole"), "SBW"), "results.pt"))
            for split in ("train", "test"):
                self.assertEqual([t.item() for t in a[split]["loss"]], [t.item() for t in b[split]["loss"]])
                self.assertEqual(a[split]["acc"], b[split]["acc"])
            times = load(os.path.join(folder, "time", "time-0.pt"))
            self.assertEqual([k for k in times["time"] if k.startswith("epoch-")],
                             ["epoch-1", "epoch-2", "epoch-3"])
            self.assertEqual(len(times["time"]["sorter"]), 3)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_every_rank_writes_its_time_file(self):
        tmp = tempfile.mkdtemp(prefix="khsgd-reference-ranks-")
        try:
            result = train(tmp, "CD-GraB", ranks=2)
            self.assertEqual(result.returncode, 0, result.stderr)
            folder = run_folder(tmp, "CD-GraB", ranks=2)
            self.assertEqual(sorted(os.listdir(os.path.join(folder, "time"))), ["time-0.pt", "time-1.pt"])
            for rank in (0, 1):
                times = load(os.path.join(folder, "time", f"time-{rank}.pt"))
                rows = read_csv(os.path.join(folder, f"time-rank{rank}.csv"))
                self.assertEqual(times["time"]["epoch-3"].tolist(), [float(np.float32(rows[2]["train_seconds"]))])
            self.assertEqual(len(load(os.path.join(folder, "results.pt"))["test"]["acc"]), 3)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def save_reference_run(exp_folder, sorter, metrics, step_seconds, ranks=1):
    """A run folder as main-LR-HMDA.py leaves it: results.pt with 0-dim loss tensors and float
    accuracies, time/time-R.pt from EventTimer.summary() with one entry per timed block."""
    folder = os.path.join(exp_folder, f"LR-hmda-{sorter}-lr-0.005-B-16-seed-1")
    os.makedirs(os.path.join(folder, "time"))
    results = {"train": {"loss": [], "acc": []}, "test": {"loss": [], "acc": []}}
    for row in metrics:
        for split in ("train", "test"):
            results[split]["acc"].append(float(row[f"{split}_acc"]))
            results[split]["loss"].append(torch.tensor(float(row[f"{split}_loss"]), dtype=torch.float32))
    torch.save(results, os.path.join(folder, "results.pt"))
    for rank in range(ranks):
        time = {"SGD": [1e-4], "sorter": []}
        for e in range(1, len(metrics) + 1):
            time["sorter"].append(0.01)
            time[f"epoch-{e}"] = [0.01] + [step_seconds * e] * 1250  # the sort, then each step
        summary = {"time": {k: torch.tensor(v) for k, v in time.items()}}
        for memory in TIMER_KEYS[1:]:
            summary[memory] = {k: torch.zeros(len(v)) for k, v in time.items()}
        torch.save(summary, os.path.join(folder, "time", f"time-{rank}.pt"))
    return folder


class MixedFigure(RunsInATemporaryFolder):
    """One figure from the reference's run folders (its golden numbers, saved the way
    main-LR-HMDA.py saves them) beside khsgd's runs of the same setting."""

    @classmethod
    def prepare(cls):
        cls.results = os.path.join(cls.tmp, "results")
        exp = os.path.join(cls.results, "LR-HMDA-3")
        for i, sorter in enumerate(SORTERS):
            golden = read_csv(os.path.join(GOLDEN, "cpu", f"n1-{sorter}", "metrics.csv"))
            save_reference_run(exp, sorter, golden, step_seconds=1e-3 * (i + 1))
            result = train(cls.results, sorter)
            assert result.returncode == 0, result.stderr

    def test_reference_folders_are_read_beside_ours(self):
        runs = khsgd_results.find_runs(self.results)
        self.assertEqual(sorted((r.source, r.sorter) for r in runs),
                         sorted([(s, sorter) for s in ("khsgd", "reference") for sorter in SORTERS]))
        groups = khsgd_results.group_by_setting(runs)
        self.assertEqual(len(groups), 1, list(groups))
        (setting, grouped), = groups.items()
        self.assertEqual(setting, ("hmda", 20011, 0.005, 16, 0.9, 3))
        self.assertEqual({r.workers for r in grouped}, {1})
        curves = plot_figures.curves(grouped)
        self.assertEqual(len(curves), 8)
        for i, sorter in enumerate(SORTERS):
            label = khsgd_results.SORTER_LABELS[sorter]
            ours, theirs = curves[("khsgd", sorter)], curves[("reference", sorter)]
            self.assertEqual((ours["label"], theirs["label"]), (f"{label} (khsgd)", f"{label} (reference)"))
            # Same seed, same data: the two lines lie on each other.
            np.testing.assert_allclose(ours["loss"][0], theirs["loss"][0], atol=1e-4)
            np.testing.assert_allclose(ours["acc"][0], theirs["acc"][0], atol=5e-2)
            # The reference's time axis: the cumulative sum of each epoch's timed blocks.
            per_epoch = [0.01 + 1250 * 1e-3 * (i + 1) * e for e in (1, 2, 3)]
            np.testing.assert_allclose(theirs["seconds"], np.cumsum(per_epoch), rtol=1e-6)

    def test_figures_and_table_from_the_mix(self):
        out = os.path.join(self.tmp, "figures")
        result = subprocess.run([sys.executable, os.path.join(SOURCE, "plots", "plot_figures.py"),
                                 self.results, "--out", out], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        for name in ("loss_acc_vs_epochs", "loss_acc_vs_seconds"):
            for extension in ("png", "pdf"):
                self.assertGreater(os.path.getsize(os.path.join(out, f"{name}.{extension}")), 5000)
        rows = summarize.summarize(self.results)
        self.assertEqual(sorted((r["source"], r["sorter"]) for r in rows),
                         sorted([(s, sorter) for s in ("khsgd", "reference") for sorter in SORTERS]))
        golden = read_csv(os.path.join(GOLDEN, "cpu", "n1-SBW", "metrics.csv"))
        row = next(r for r in rows if r["source"] == "reference" and r["sorter"] == "SBW")
        self.assertEqual(row["label"], "CD-GraB: SBW (reference)")
        self.assertAlmostEqual(row["final_train_loss"], float(golden[2]["train_loss"]), places=6)

    def test_a_reference_folder_alone_and_the_notebooks_sorter_name(self):
        alone = os.path.join(self.tmp, "alone", "ft-epoch-pen-3")
        golden = read_csv(os.path.join(GOLDEN, "cpu", "n1-KH-SGD", "metrics.csv"))
        folder = save_reference_run(alone, "CD-OH-opt", golden, step_seconds=1e-3, ranks=2)
        (run,) = khsgd_results.find_runs(os.path.dirname(alone))
        self.assertEqual((run.source, run.sorter, run.path), ("reference", "KH-SGD", folder))
        self.assertEqual(run.setting(), ("hmda", None, 0.005, 16, 0.9, 3))
        self.assertEqual(run.workers, 2)  # one time file per rank
        self.assertIn("(? train rows), lr 0.005", khsgd_results.describe_setting(run.setting()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
