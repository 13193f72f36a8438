#!/usr/bin/env python3
"""khsgd's sorters in an ordinary PyTorch loop: a small MLP on scikit-learn's bundled digits (no
download), every sorter x seeds 1-5, written as run folders that plots/plot_figures.py draws.

  PYTHONPATH=build-pip/python .venv/bin/python python/examples/sklearn_digits.py OUT [--epochs 10]
  python3 plots/plot_figures.py OUT --out OUT

Each run: 1437 training rows (a fixed 80/20 split, standardised), 64-32-10 MLP (tanh), SGD with
momentum 0.9, B = 16 (khsgd.GraBSampler: 1424 rows used), per-example gradients by torch.func.
OUT/SORTER-seedS/ holds config.json, metrics.csv (epoch, train/test loss and accuracy,
train_seconds) and summary.json, the columns khsgd_train writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import khsgd


def data():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    mean, std = Xtr.mean(0), Xtr.std(0) + 1e-6
    f = (lambda a: torch.tensor((a - mean) / std, dtype=torch.float32))
    return f(Xtr), torch.tensor(ytr), f(Xte), torch.tensor(yte)


def evaluate(model, X, y):
    with torch.no_grad():
        out = model(X)
        return (torch.nn.functional.cross_entropy(out, y).item(),
                (out.argmax(1) == y).float().mean().item())


def run(sorter: str, seed: int, epochs: int, lr: float, B: int, out: str, tensors) -> None:
    Xtr, ytr, Xte, yte = tensors
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    params = dict(model.named_parameters())
    sampler = khsgd.GraBSampler(range(len(Xtr)), params, sorter, batch_size=B, epochs=epochs,
                                seed=seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(Xtr, ytr), batch_size=B,
                                         sampler=sampler)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def loss_of(p, x, t):
        logits = torch.func.functional_call(model, p, (x[None],))
        return torch.nn.functional.cross_entropy(logits, t[None])

    per_example = torch.func.vmap(torch.func.grad(loss_of), in_dims=(None, 0, 0))
    folder = os.path.join(out, f"{sorter}-seed{seed}")
    os.makedirs(folder, exist_ok=True)
    rows = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        for x, t in loader:
            grads = per_example({k: v.detach() for k, v in params.items()}, x, t)
            sampler.step(grads)
            optimizer.zero_grad()
            for name, p in params.items():
                p.grad = grads[name].mean(0)
            optimizer.step()
        seconds = time.perf_counter() - start
        rows.append((epoch, *evaluate(model, Xtr, ytr), *evaluate(model, Xte, yte), seconds))
    config = {"sorter": sorter, "seed": seed, "node_cnt": 1, "dataset": "sklearn-digits",
              "train_rows": sampler.m, "lr": lr, "B": B, "momentum": 0.9, "epochs": epochs}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(folder, "metrics.csv"), "w") as f:
        f.write("epoch,train_loss,train_acc,test_loss,test_acc,train_seconds\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump({"finished": True}, f)
    print(f"{sorter:>8} seed {seed}: train loss {rows[-1][1]:.4f}, test acc {rows[-1][4]:.4f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--sorters", nargs="+", default=khsgd.sorter_names())
    args = parser.parse_args()
    torch.set_num_threads(1)
    tensors = data()
    for sorter in args.sorters:
        for seed in args.seeds:
            run(sorter, seed, args.epochs, args.lr, args.B, args.out, tensors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
