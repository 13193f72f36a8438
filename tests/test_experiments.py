#!/usr/bin/env python3
"""The experiment tools end to end (run by ctest): the sweep and its resumption, the summary
table, the figures, and the gradient spectrum tool. Needs KHSGD_TRAIN (the binary) and
KHSGD_SOURCE_DIR (the repository) in the environment."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

SOURCE = os.environ.get("KHSGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
TRAIN = os.environ.get("KHSGD_TRAIN", os.path.join(SOURCE, "build", "khsgd_train"))
sys.path.insert(0, os.path.join(SOURCE, "plots"))

import grad_spectrum  # noqa: E402
import khsgd_results  # noqa: E402

TINY = ["--dataset", "synthetic", "--epochs", "2", "--lr", "5e-3", "--B", "16"]


def run(command, **kwargs):
    env = dict(os.environ, KHSGD_TRAIN=TRAIN, PYTHON=sys.executable)
    return subprocess.run(command, capture_output=True, text=True, env=env, **kwargs)


class Sweep(unittest.TestCase):
    """scripts/sweep.sh on a tiny synthetic set: 2 sorters x 2 seeds x 2 epochs, 1 and 2 ranks."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="khsgd-sweep-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def sweep(self, ranks, results, *flags, lr="5e-3", train_flags=()):
        return run([os.path.join(SOURCE, "scripts", "sweep.sh"), "--sorters", "D-RR KH-SGD",
                    "--seeds", "1 2", "--epochs", "2", "--ranks", str(ranks), "--lr", lr,
                    "--dataset", "synthetic", "--results_dir", results, *flags, "--",
                    "--synthetic_rows", "2000", "--quiet", "--device", "cpu", *train_flags])

    def check_table(self, out, ranks, lr="0.005"):
        self.assertIn(f"synthetic (2000 train rows), lr {lr}, B 16", out)
        for label in ("RR", "KH-SGD"):
            line = next((l for l in out.splitlines()
                         if re.match(rf"\s*{ranks}\s+{re.escape(label)} ", l)), None)
            self.assertIsNotNone(line, out)
            self.assertIn("2/2", line)
            numbers = re.findall(r"\d+\.\d+", line)
            self.assertGreaterEqual(len(numbers), 5, line)
            loss, _, acc = float(numbers[0]), float(numbers[1]), float(numbers[2])
            self.assertTrue(0.2 < loss < 0.7, line)
            self.assertTrue(60 < acc < 100, line)

    def test_one_and_two_ranks_resume_without_redoing_finished_runs(self):
        for ranks in (1, 2):
            results = os.path.join(self.tmp, f"ranks{ranks}")
            first = self.sweep(ranks, results)
            self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
            self.assertEqual(first.stdout.count(": done in"), 4, first.stdout)
            self.check_table(first.stdout, ranks)
            exp = os.path.join(results, "LR-HMDA-2")
            logs = os.listdir(os.path.join(exp, "logs"))
            self.assertEqual(len(logs), 4, logs)
            # A second sweep skips the four finished runs.
            again = self.sweep(ranks, results)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual(again.stdout.count("finished earlier, skipped"), 4, again.stdout)
            self.check_table(again.stdout, ranks)
            # An interrupted run (no summary.json) is the only one run again.
            name = f"LR-synthetic-KH-SGD-node-{ranks}-lr-0.005-B-16-seed-2"
            os.remove(os.path.join(exp, name, "summary.json"))
            third = self.sweep(ranks, results)
            self.assertEqual(third.returncode, 0, third.stdout + third.stderr)
            self.assertEqual(third.stdout.count("finished earlier, skipped"), 3, third.stdout)
            workers = ", 2 workers" if ranks == 2 else ""
            self.assertIn(f"KH-SGD seed 2{workers}: done", third.stdout)

    def test_finished_runs_with_other_flags_stop_the_sweep(self):
        """A folder name does not hold every flag: a finished run made with another --momentum is
        not this sweep's result. The sweep names the flag and starts nothing, or runs those again
        with --overwrite_changed."""
        results = os.path.join(self.tmp, "changed")
        first = self.sweep(1, results)
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        exp = os.path.join(results, "LR-HMDA-2")
        name = "LR-synthetic-D-RR-node-1-lr-0.005-B-16-seed-1"
        with open(os.path.join(exp, name, "metrics.csv")) as handle:
            before = handle.read()
        other = self.sweep(1, results, train_flags=("--momentum", "0.5"))
        self.assertEqual(other.returncode, 2, other.stdout + other.stderr)
        self.assertIn(f"D-RR seed 1: '{os.path.join(exp, name)}' holds a run with other flags "
                      "(--momentum was '0.9' there, '0.5' here)", other.stderr)
        self.assertEqual(other.stderr.count("holds a run with other flags"), 4, other.stderr)
        self.assertIn("nothing was started", other.stderr)
        self.assertNotIn("done in", other.stdout)
        self.assertNotIn("skipped", other.stdout)
        with open(os.path.join(exp, name, "metrics.csv")) as handle:
            self.assertEqual(handle.read(), before)
        again = self.sweep(1, results, "--overwrite_changed", train_flags=("--momentum", "0.5"))
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertIn("4 with other flags run again (--overwrite_changed)", again.stdout)
        self.assertEqual(again.stdout.count(": done in"), 4, again.stdout)
        with open(os.path.join(exp, name, "config.json")) as handle:
            self.assertEqual(json.load(handle)["momentum"], 0.5)
        # Now they are this sweep's runs: skipped.
        third = self.sweep(1, results, train_flags=("--momentum", "0.5"))
        self.assertEqual(third.stdout.count("finished earlier, skipped"), 4, third.stdout)

    def test_a_diverged_run_is_named_as_it_ends(self):
        """A run whose loss turns NaN finishes (exit 0); the sweep's line for it says so."""
        result = self.sweep(1, os.path.join(self.tmp, "diverged"), lr="1e308")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout.count(", DIVERGED from epoch 1 (see "), 4, result.stdout)

    def test_figures_from_a_sweep(self):
        results = os.path.join(self.tmp, "figures")
        self.assertEqual(self.sweep(1, results).returncode, 0)
        out = os.path.join(self.tmp, "figures-out")
        result = run([sys.executable, os.path.join(SOURCE, "plots", "plot_figures.py"), results,
                      "--out", out])
        self.assertEqual(result.returncode, 0, result.stderr)
        for name in ("loss_acc_vs_epochs", "loss_acc_vs_seconds"):
            for extension in ("png", "pdf"):
                path = os.path.join(out, f"{name}.{extension}")
                self.assertTrue(os.path.isfile(path), path)
                self.assertGreater(os.path.getsize(path), 5000, path)
        with open(os.path.join(out, "loss_acc_vs_epochs.png"), "rb") as handle:
            self.assertEqual(handle.read(8), b"\x89PNG\r\n\x1a\n")
        with open(os.path.join(out, "loss_acc_vs_epochs.pdf"), "rb") as handle:
            self.assertEqual(handle.read(5), b"%PDF-")

    def test_worker_count_study_runs_at_once_and_gets_a_column_and_panels(self):
        results = os.path.join(self.tmp, "workers")
        study = self.sweep("1 2", results, "--jobs", "2")
        self.assertEqual(study.returncode, 0, study.stdout + study.stderr)
        self.assertIn("sweep: 8 run(s), 2 at a time", study.stdout)
        self.assertEqual(study.stdout.count(": done in"), 8, study.stdout)
        self.assertEqual(study.stdout.count(", 2 workers: done in"), 4, study.stdout)
        for ranks in (1, 2):
            self.check_table(study.stdout, ranks)
        # One setting, so one table: worker counts are a column, not separate settings.
        self.assertEqual(study.stdout.count("synthetic (2000 train rows)"), 1, study.stdout)
        out = os.path.join(self.tmp, "workers-out")
        figures = run([sys.executable, os.path.join(SOURCE, "plots", "plot_figures.py"), results,
                       "--out", out])
        self.assertEqual(figures.returncode, 0, figures.stderr)

        def png_height(path):
            with open(path, "rb") as handle:
                header = handle.read(24)
            return int.from_bytes(header[20:24], "big")

        one = os.path.join(self.tmp, "figures-one")
        single = os.path.join(self.tmp, "single")
        self.assertEqual(self.sweep(1, single).returncode, 0)
        self.assertEqual(run([sys.executable, os.path.join(SOURCE, "plots", "plot_figures.py"),
                              single, "--out", one]).returncode, 0)
        # Two rows of panels (1 and 2 workers) against one.
        self.assertEqual(png_height(os.path.join(out, "loss_acc_vs_epochs.png")),
                         2 * png_height(os.path.join(one, "loss_acc_vs_epochs.png")))

    def test_in_process_workers_give_the_ranks_numbers(self):
        ranks = os.path.join(self.tmp, "as-ranks")
        workers = os.path.join(self.tmp, "in-process")
        self.assertEqual(self.sweep(2, ranks).returncode, 0)
        result = self.sweep(2, workers, "--in_process")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        # One process per run: both cores take a run at once.
        self.assertIn("sweep: 4 run(s), as many at a time as keep one process per core", result.stdout)
        self.check_table(result.stdout, 2)
        for sorter in ("D-RR", "KH-SGD"):
            for seed in (1, 2):
                name = f"LR-synthetic-{sorter}-node-2-lr-0.005-B-16-seed-{seed}"
                a, b = (os.path.join(root, "LR-HMDA-2", name) for root in (ranks, workers))
                with open(os.path.join(a, "metrics.csv")) as x, open(os.path.join(b, "metrics.csv")) as y:
                    self.assertEqual([l.split(",")[:5] for l in x], [l.split(",")[:5] for l in y], name)
                with open(os.path.join(b, "config.json")) as handle:
                    self.assertIn('"in_process": true', handle.read())

    def test_figures_refuse_mixed_settings(self):
        results = os.path.join(self.tmp, "mixed")
        for lr in ("5e-3", "1e-2"):
            self.assertEqual(self.sweep(1, results, lr=lr).returncode, 0)
        result = run([sys.executable, os.path.join(SOURCE, "plots", "plot_figures.py"), results,
                      "--out", os.path.join(self.tmp, "mixed-out")])
        self.assertEqual(result.returncode, 2)
        self.assertIn("--setting N", result.stderr)
        self.assertIn("1: ", result.stderr)


class Summary(unittest.TestCase):
    def test_diverged_runs_are_not_counted_as_done(self):
        """--lr 1e308 gives NaN losses from epoch 1: the table must not call such seeds done."""
        tmp = tempfile.mkdtemp(prefix="khsgd-diverged-")
        try:
            for seed in ("1", "2"):
                result = run([TRAIN, "--dataset", "synthetic", "--synthetic_rows", "2000",
                              "--epochs", "2", "--lr", "1e308", "--seed", seed,
                              "--results_dir", tmp, "--quiet", "--device", "cpu"])
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn("training diverged at epoch 1", result.stderr)
            # One of them as if it came from before summary.json recorded divergence.
            folder = os.path.join(tmp, "LR-HMDA-2", "LR-synthetic-CD-GraB-node-1-lr-1e+308-B-16-seed-2")
            with open(os.path.join(folder, "summary.json"), "w") as handle:
                handle.write('{"finished": true}')
            runs = khsgd_results.find_runs(tmp)
            self.assertEqual(len(runs), 2)
            self.assertTrue(all(r.diverged and r.first_nonfinite_epoch == 1 for r in runs))
            table = run([sys.executable, os.path.join(SOURCE, "plots", "summarize.py"), tmp])
            self.assertEqual(table.returncode, 0, table.stderr)
            line = next(l for l in table.stdout.splitlines() if re.match(r"\s*1\s+CD-GraB", l))
            self.assertIn("0/2", line)
            self.assertTrue(line.rstrip().endswith("2 (from epoch 1)"), line)
            self.assertIn("diverged", table.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_mean_and_std_over_seeds(self):
        mean, std = khsgd_results.mean_std([np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0])])
        np.testing.assert_allclose(mean, [2.0, 3.0])
        np.testing.assert_allclose(std, [math.sqrt(2.0), math.sqrt(2.0)])


class Spectrum(unittest.TestCase):
    def test_recovers_known_singular_values(self):
        rng = np.random.default_rng(4)
        known = np.array([50.0, 20.0, 7.0, 3.0, 1.0, 0.5, 0.1])
        u, _ = np.linalg.qr(rng.standard_normal((4000, len(known))))
        v, _ = np.linalg.qr(rng.standard_normal((len(known), len(known))))
        X = (u * known) @ v.T
        result = grad_spectrum.analyse(X, shift=1.0)
        np.testing.assert_allclose(result["singular_values"], known, rtol=1e-10)
        centred = X - X.mean(axis=0)
        eps = np.linalg.norm(centred, axis=1).max() / math.sqrt(X.shape[0])
        self.assertAlmostEqual(result["eps"], eps, places=12)
        self.assertEqual(result["eps_rank"], int((known > eps).sum()))
        # The rank counts singular values above the threshold, whatever the shift.
        shifted = grad_spectrum.analyse(X, shift=10.0 / eps)
        self.assertAlmostEqual(shifted["eps"], 10.0, places=9)
        self.assertEqual(shifted["eps_rank"], 2)
        # The reference's saved tensors are [1, N, D].
        self.assertEqual(grad_spectrum.analyse(X[None], shift=1.0)["eps_rank"], result["eps_rank"])

    def test_paper_shift(self):
        expected = math.sqrt(9 * math.e * math.log(48821400)
                             * math.log(48821400 * (1 + math.log(244107 / 2))))
        self.assertAlmostEqual(khsgd_results.PAPER_SHIFT, expected, places=12)

    def test_reads_the_reference_cuda_saved_files(self):
        data = os.path.join(SOURCE, "tests", "data", "hmda-small-cuda")
        train_x, test_x = khsgd_results.load_pt(os.path.join(data, "features-processed-NY-2017.pt"))
        train_y, test_y = khsgd_results.load_pt(os.path.join(data, "targets-processed-NY-2017.pt"))
        self.assertEqual(train_x.shape, (2000, 20))
        self.assertEqual(test_x.shape, (500, 20))
        self.assertEqual(train_y.shape, (2000,))
        self.assertAlmostEqual(float(np.concatenate([train_y, test_y]).mean()), 0.7812, places=4)

    def test_saved_gradients_are_the_epochs_rows_in_order(self):
        tmp = tempfile.mkdtemp(prefix="khsgd-grads-")
        try:
            golden = os.path.join(SOURCE, "tests", "data", "golden", "data")
            result = run([TRAIN, "--sorter", "SBW", "--seed", "1", "--lr", "5e-3", "--epochs", "2",
                          "--data_dir", golden, "--results_dir", tmp, "--save_grads", "2",
                          "--save_orders", "--quiet", "--device", "cpu"])
            self.assertEqual(result.returncode, 0, result.stderr)
            folder = os.path.join(tmp, "LR-HMDA-2", "LR-hmda-SBW-node-1-lr-0.005-B-16-seed-1")
            grads = khsgd_results.load_pt(os.path.join(folder, "grads-epoch2.pt"))
            self.assertEqual(grads.shape, (20000, 21))
            with open(os.path.join(folder, "orders-rank0.csv")) as handle:
                order = [int(v) for v in handle.read().splitlines()[1].split(",")]
            features, _ = khsgd_results.load_pt(os.path.join(golden, "features-processed-NY-2017.pt"))
            # Row i is (sigma(z) - y) [x; 1] of the i-th example the epoch processed.
            residual = grads[:, 20]
            used = np.abs(residual) > 1e-3
            recovered = grads[used, :20] / residual[used, None]
            np.testing.assert_allclose(recovered, features[np.asarray(order)[used]], rtol=1e-4, atol=1e-4)
            self.assertTrue(np.all(np.abs(residual) < 1))
            spectrum = run([sys.executable, os.path.join(SOURCE, "plots", "grad_spectrum.py"), folder])
            self.assertEqual(spectrum.returncode, 0, spectrum.stderr)
            self.assertIn("epoch 2: eps", spectrum.stdout)
            for name in ("singular_values_epoch_2.png", "singular_values_epoch_2.pdf",
                         "eps_rank_histogram.png", "eps_rank_histogram.pdf", "spectrum.csv"):
                path = os.path.join(folder, "spectrum", name)
                self.assertGreater(os.path.getsize(path), 0, path)
            with open(os.path.join(folder, "spectrum", "spectrum.csv")) as handle:
                rows = list(csv.DictReader(handle))
            svs = np.linalg.svd(grads.astype(np.float64), compute_uv=False)
            self.assertAlmostEqual(float(rows[0]["sv_1"]), svs[0], delta=1e-6 * svs[0])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
