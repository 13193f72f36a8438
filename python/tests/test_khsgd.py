"""The Python module khsgd: the orders of khsgd_train's golden runs, state round trips, two ranks
over gloo, grab-sampler's rules, and the errors of bad input (python/README.md).

Run: PYTHONPATH=BUILD/python python -m pytest python/tests (ctest runs it where the module is
built). Skips as a whole where khsgd is not importable, unless KHSGD_REQUIRE_MODULE=1 (ctest sets
it: there a module that does not import is a failure); KHSGD_REQUIRE_GRAB=1 likewise makes
grab-sampler's comparison fail rather than skip where grab-sampler does not import, and
KHSGD_REQUIRE_GPU=1 (scripts/gpu-check.sh) the CUDA tensors' test where torch sees no GPU.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
from pathlib import Path

import pytest

if os.environ.get("KHSGD_REQUIRE_MODULE") == "1":
    import khsgd
    import torch
else:
    torch = pytest.importorskip("torch")
    khsgd = pytest.importorskip("khsgd")

SOURCE = Path(os.environ.get("KHSGD_SOURCE_DIR", Path(__file__).resolve().parents[2]))
GOLDEN = SOURCE / "tests" / "data" / "golden"


def golden_orders(run: str, rank: int) -> list[list[int]]:
    with gzip.open(GOLDEN / "cpu" / run / f"orders-rank{rank}.csv.gz", "rt") as f:
        return [[int(v) for v in line.split(",")] for line in f.read().split()]


def golden_data():
    X = torch.load(GOLDEN / "data" / "features-processed-NY-2017.pt")[0].float()
    y = torch.load(GOLDEN / "data" / "targets-processed-NY-2017.pt")[0].float()
    return X, y


def init_theta(seed: int, d: int) -> torch.Tensor:
    """khsgd_train's start (ALGORITHM.md §5): manual_seed, then Linear(d, 1)'s init on the CPU generator."""
    torch.manual_seed(seed)
    linear = torch.nn.Linear(d, 1)
    return torch.cat([linear.weight.detach().reshape(d), linear.bias.detach()])


def step_gradients(X, y, theta, rows):
    """Per-example gradients [ranks, mb, D] with khsgd's roundings (ALGORITHM.md §2, §7): z's dot
    product in double rounded once, then float32 ops."""
    xb, yb = X[rows], y[rows]
    d = X.shape[1]
    z = (xb.double() @ theta[:d].double()).float() + theta[d]
    r = torch.sigmoid(z) - yb
    return torch.cat([r[..., None] * xb, r[..., None]], dim=2).contiguous()


def sgd(theta, v, G):
    """ḡ: rows summed in order, one division; torchopt's momentum step in three roundings."""
    R = G.reshape(-1, G.shape[-1])
    total = R[0].clone()
    for i in range(1, R.shape[0]):
        total = total + R[i]
    gbar = total / R.shape[0]
    v = 0.9 * v + gbar
    return theta + (-5e-3 * v), v


def replay(sorter_name: str, n: int, epochs: int = 3, seed: int = 1):
    """khsgd_train's golden run (--B 16 --lr 5e-3 --epochs 3) replayed in Python around n
    khsgd.Sorter objects; returns orders[rank][epoch]."""
    X, y = golden_data()
    B, mb = 16, 16 // n
    steps = (X.shape[0] // B) // 2 * 2
    m = steps * B // n
    theta = init_theta(seed, X.shape[1])
    v = torch.zeros_like(theta)
    state = torch.default_generator.get_state()
    sorters = []
    for r in range(n):  # every rank seeds the same: each rank's generator in the same state
        g = torch.Generator()
        g.set_state(state)
        sorters.append(khsgd.Sorter(sorter_name, examples=m, microbatch=mb, D=X.shape[1] + 1,
                                    epochs=epochs, ranks=n, rank=r, generator=g))
    orders = [[] for _ in range(n)]
    for _ in range(epochs):
        epoch = [s.sort() for s in sorters]
        for r in range(n):
            orders[r].append(epoch[r].tolist())
        for k in range(steps):
            # each rank's rows on their own, as each process computes them (torch's vectorized
            # sigmoid may round a lane differently in a longer tensor)
            G = torch.cat([step_gradients(X, y, theta, (epoch[r][k * mb:(k + 1) * mb] + r * m)[None])
                           for r in range(n)])
            for r, s in enumerate(sorters):
                s.step(G if s.ranks_fed == n else G[r:r + 1].contiguous())
            theta, v = sgd(theta, v, G)
    return orders


GOLDEN_RUNS = ["n1-D-RR", "n1-CD-GraB", "n1-SBW", "n1-KH-SGD", "n2-D-RR", "n2-CD-GraB", "n2-SBW"]


@pytest.mark.parametrize("run", GOLDEN_RUNS)
def test_golden_orders(run):
    n, name = int(run[1]), run.split("-", 1)[1]
    got = replay(name, n)
    for r in range(n):
        assert got[r] == golden_orders(run, r), f"{run} rank {r}"


@pytest.mark.parametrize("case", ["GraB-m64-mb16-d21-e4", "GraB-m32-mb8-d5-e5"])
def test_grab_reference_orders(case):
    """The reference's GraB class on fixed gradients (tests/data/golden/sorters/README.txt)."""
    _, m, mb, d, e = case.split("-")
    m, mb, d, e = int(m[1:]), int(mb[2:]), int(d[1:]), int(e[1:])
    raw = (GOLDEN / "sorters" / f"{case}.grads.f32").read_bytes()
    grads = torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(e, m // mb, mb, d)
    expected = [[int(v) for v in line.split(",")] for line in
                (GOLDEN / "sorters" / f"{case}.orders.csv").read_text().split()]
    sorter = khsgd.Sorter("GraB", examples=m, microbatch=mb, D=d, epochs=e + 1, seed=0)
    for epoch in range(e):
        assert sorter.sort().tolist() == expected[epoch], f"epoch {epoch + 1}"
        for k in range(m // mb):
            sorter.step(grads[epoch, k].unsqueeze(0).contiguous())


def random_epochs(sorter, epochs, gen):
    orders = []
    for _ in range(epochs):
        orders.append(sorter.sort().tolist())
        for _ in range(sorter.steps_per_epoch):
            sorter.step(torch.randn(sorter.ranks_fed, sorter.shape["microbatch"], sorter.shape["D"], generator=gen))
    return orders


@pytest.mark.parametrize("name", khsgd.sorter_names() if hasattr(khsgd, "sorter_names") else [])
def test_state_dict_round_trip(name):
    shape = dict(examples=40, microbatch=4, D=7, epochs=5, ranks=2, rank=1)
    whole = khsgd.Sorter(name, seed=3, **shape)
    expected = random_epochs(whole, 5, torch.Generator().manual_seed(9))

    first = khsgd.Sorter(name, seed=3, **shape)
    gen = torch.Generator().manual_seed(9)
    head = random_epochs(first, 2, gen)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = khsgd.Sorter(name, seed=3, **shape)
    resumed.load_state_dict(torch.load(buffer))
    assert head + random_epochs(resumed, 3, gen) == expected


@pytest.mark.parametrize("name", ["CD-GraB", "KH-SGD", "SBW"])
def test_cuda_gradients_give_the_cpu_orders(name):
    if not torch.cuda.is_available():
        if os.environ.get("KHSGD_REQUIRE_GPU") == "1":
            pytest.fail(f"torch {torch.__version__} sees no CUDA device (KHSGD_REQUIRE_GPU=1: this must run here)")
        pytest.skip("no CUDA device")
    shape = dict(examples=40, microbatch=4, D=7, epochs=3, ranks=2, rank=1)
    on_cpu = random_epochs(khsgd.Sorter(name, seed=3, **shape), 3, torch.Generator().manual_seed(9))
    sorter, gen, on_cuda = khsgd.Sorter(name, seed=3, **shape), torch.Generator().manual_seed(9), []
    for _ in range(3):
        on_cuda.append(sorter.sort().tolist())
        for _ in range(sorter.steps_per_epoch):
            sorter.step(torch.randn(sorter.ranks_fed, 4, 7, generator=gen).cuda())
    assert on_cuda == on_cpu


def test_steps_without_gradients():
    sorter = make("D-RR", seed=1, epochs=2)
    first = sorter.sort()
    sorter.step(None)
    sorter.step(None)
    with pytest.raises(ValueError, match="already had its 2 steps"):
        sorter.step(None)
    g = torch.Generator().manual_seed(1)
    assert first.tolist() == torch.randperm(8, generator=g).tolist()
    assert sorter.sort().tolist() == torch.randperm(8, generator=g).tolist()  # each epoch a new one


@pytest.mark.parametrize("balance_type", ["KH-SGD", "rr", "mean"])
def test_sampler_state_dict_round_trip(balance_type):
    params = {"w": torch.zeros(2, 3), "b": torch.zeros(2)}

    def epochs(sampler, count, gen):
        orders = []
        for _ in range(count):
            orders.append(list(iter(sampler)))
            for _ in range(len(orders[-1]) // 4):
                sampler.step({"w": torch.randn(4, 2, 3, generator=gen), "b": torch.randn(4, 2, generator=gen)})
        return orders

    build = (lambda: khsgd.GraBSampler(range(26), params, balance_type, batch_size=4, epochs=4, seed=2))
    whole = epochs(build(), 4, torch.Generator().manual_seed(1))
    assert sorted(whole[0]) == list(range(24))  # 26 examples, 6 steps of 4: two left out
    first, gen = build(), torch.Generator().manual_seed(1)
    head = epochs(first, 2, gen)
    resumed = build()
    resumed.load_state_dict(first.state_dict())
    assert head + epochs(resumed, 2, gen) == whole


def test_shared_draws_follow_the_default_generator():
    torch.manual_seed(5)
    a = khsgd.Sorter("D-RR", examples=10, microbatch=2, D=3, epochs=2).sort()
    torch.manual_seed(5)
    assert torch.equal(a, torch.randperm(10))
    assert torch.equal(khsgd.Sorter("D-RR", examples=10, microbatch=2, D=3, seed=5).sort(), a)


# --- two processes over gloo: the 2-rank golden runs through khsgd.GraBSampler ------------------

def two_rank_worker(rank, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    X, y = golden_data()
    n, mb = 2, 8
    results = {}
    for name in ["CD-GraB", "D-RR", "SBW", "KH-SGD"]:
        theta = init_theta(1, X.shape[1])
        if rank == 1:  # rank 1's generator elsewhere: the sampler starts every rank in rank 0's state
            torch.rand(7)
        v = torch.zeros_like(theta)
        params = {"weight": torch.zeros(1, X.shape[1]), "bias": torch.zeros(1)}
        sampler = khsgd.GraBSampler(list(range(X.shape[0])), params, name, batch_size=mb, epochs=3,
                                    generator=torch.default_generator)
        orders = []
        for _ in range(3):
            indices = list(iter(sampler))
            orders.append([i - rank * sampler.m for i in indices])
            for k in range(len(indices) // mb):
                rows = torch.tensor(indices[k * mb:(k + 1) * mb])
                g = step_gradients(X, y, theta, rows.unsqueeze(0))[0]
                sampler.step({"weight": g[:, :-1].reshape(mb, 1, -1), "bias": g[:, -1:].clone()})
                parts = [torch.empty_like(g) for _ in range(n)]
                dist.all_gather(parts, g)
                theta, v = sgd(theta, v, torch.stack(parts))
        results[name] = orders
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_over_gloo(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(two_rank_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    khsgd_orders = replay("KH-SGD", 2)  # no golden n2 KH-SGD run: the one-process replay instead
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert sorted(got) == ["CD-GraB", "D-RR", "KH-SGD", "SBW"]
        for name, orders in got.items():
            expected = khsgd_orders[rank] if name == "KH-SGD" else golden_orders(f"n2-{name}", rank)
            assert orders == expected, f"{name} rank {rank}"


# --- grab-sampler's rules (skipped where grab-sampler is not importable) --------------------------

@pytest.mark.parametrize("ours,theirs", [("CD-GraB", "PairBalance"), ("GraB", "MeanBalance")])
def test_grab_sampler_same_rule(ours, theirs):
    """grab-sampler decides '+' on <s, z> < 0 where khsgd takes <= 0: at the first example of an
    epoch (s = 0) the two differ, and from there every decision is the mirror image, so from the
    natural order grab-sampler's next order is khsgd's reversed (python/README.md)."""
    if "torch_sparse" not in sys.modules:  # grab-sampler imports it for a projection not used here;
        import types  # its wheel is a source build against torch, so the venv goes without it

        sys.modules["torch_sparse"] = types.SimpleNamespace(SparseTensor=None)
    if os.environ.get("KHSGD_REQUIRE_GRAB") == "1":
        import grabsampler.sorter as sorter_module
    else:
        sorter_module = pytest.importorskip("grabsampler.sorter")
    m, mb, d = 64, 8, 11
    theirs_sorter = getattr(sorter_module, theirs)(m, d, random_first_epoch=False, device="cpu")
    sorter = khsgd.Sorter(ours, examples=m, microbatch=mb, D=d, epochs=2, seed=0)
    assert sorter.sort().tolist() == list(range(m))
    theirs_sorter.reset_epoch()
    gen = torch.Generator().manual_seed(4)
    for _ in range(m // mb):
        G = torch.randn(1, mb, d, generator=gen)
        sorter.step(G)
        theirs_sorter.step({"w": G[0]})
    theirs_sorter.reset_epoch()
    assert theirs_sorter.orders.tolist() == sorter.sort().flip(0).tolist()


# --- bad input ------------------------------------------------------------------------------------

def make(name="CD-GraB", **kw):
    shape = dict(examples=8, microbatch=4, D=3, epochs=1, seed=0)
    shape.update(kw)
    return khsgd.Sorter(name, **shape)


@pytest.mark.parametrize("kwargs,error,text", [
    (dict(name="nope"), ValueError, "CD-GraB"),
    (dict(microbatch=3, examples=9), ValueError, "even"),
    (dict(examples=10), ValueError, "multiple of microbatch"),
    (dict(D=0), ValueError, "D must be at least 1"),
    (dict(rank=2, ranks=2), ValueError, "rank must be in"),
    (dict(D=2.5), TypeError, "D must be an int"),
    (dict(seed="1"), TypeError, "seed must be an int"),
    (dict(seed=None, generator=5), TypeError, "torch.Generator"),
])
def test_bad_construction(kwargs, error, text):
    with pytest.raises(error, match=text):
        make(**kwargs)


def test_bad_steps():
    sorter = make()
    with pytest.raises(ValueError, match="sort"):
        sorter.step(torch.zeros(1, 4, 3))
    sorter.sort()
    with pytest.raises(ValueError, match=r"\[1, 4, 3\].*got \[1, 4, 2\]"):
        sorter.step(torch.zeros(1, 4, 2))
    with pytest.raises(ValueError, match=r"got \[4, 3\]"):
        sorter.step(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="float32, got torch.float64"):
        sorter.step(torch.zeros(1, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="on the CPU, got device meta"):
        sorter.step(torch.zeros(1, 4, 3, device="meta"))
    with pytest.raises(ValueError, match="contiguous"):
        sorter.step(torch.zeros(1, 3, 4).transpose(1, 2))
    with pytest.raises(TypeError, match="torch.Tensor"):
        sorter.step([[0.0] * 3] * 4)
    with pytest.raises(TypeError, match="CD-GraB needs the step's per-example gradients, got None"):
        sorter.step(None)
    sorter.step(torch.zeros(1, 4, 3))
    sorter.step(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="already had its 2 steps"):
        sorter.step(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="epochs=1"):
        sorter.sort()


def test_bad_state():
    sorter = make()
    sorter.sort()
    sorter.step(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="between epochs"):
        sorter.state_dict()
    with pytest.raises(ValueError, match="this sorter is CD-GraB"):
        make(examples=16).load_state_dict(make().state_dict())
    state = make().state_dict()
    state["sorter"] = state["sorter"][:-3]
    with pytest.raises(ValueError):
        make().load_state_dict(state)


def test_bad_sampler_input():
    params = {"w": torch.zeros(3)}
    with pytest.raises(ValueError, match="balance_type 'ntk'"):
        khsgd.GraBSampler(range(8), params, "ntk", batch_size=4)
    sampler = khsgd.GraBSampler(range(8), params, "pair", batch_size=4)
    iter(sampler)
    with pytest.raises(ValueError, match=r"expected gradients for \['w'\]"):
        sampler.step({"v": torch.zeros(4, 3)})
    with pytest.raises(ValueError, match=r"batch_size=4"):
        sampler.step({"w": torch.zeros(2, 3)})



# --- the review's findings: epoch boundaries, draws, caps, threads, atomic loads -----------------

def test_state_dict_refused_right_after_sort():
    """After sort() the epoch has begun (the order matrices swapped, the draws made): a state saved
    there would resume into a stale order, so it is refused until the epoch's steps are done."""
    shape = dict(examples=8, microbatch=4, D=3, epochs=3)
    for name in ["KH-SGD", "SBW", "CD-GraB", "D-RR"]:
        sorter = khsgd.Sorter(name, seed=1, **shape)
        sorter.sort()
        with pytest.raises(ValueError, match="between epochs"):
            sorter.state_dict()
        for _ in range(2):
            sorter.step(torch.ones(1, 4, 3) if sorter.needs != "none" else None)
        sorter.state_dict()


@pytest.mark.parametrize("name", ["CD-GraB", "D-RR", "GraB"])
def test_sort_mid_epoch_refused(name):
    sorter = khsgd.Sorter(name, examples=8, microbatch=2, D=3, epochs=3, seed=1)
    sorter.sort()
    sorter.step(torch.ones(1, 2, 3) if sorter.needs != "none" else None)
    with pytest.raises(ValueError, match="the epoch had 1 of 4 steps"):
        sorter.sort()


def test_sampler_loop_broken_early():
    sampler = khsgd.GraBSampler(range(8), {"w": torch.zeros(3)}, "pair", batch_size=2, epochs=2, seed=0)
    for i, _ in enumerate(sampler):
        sampler.step({"w": torch.ones(2, 3)}) if i % 2 else None
        if i == 3:
            break
    with pytest.raises(ValueError, match=r"GraBSampler: a new epoch began .*the epoch had 2 of 4 steps"):
        iter(sampler)


def test_draws_ignore_the_default_device():
    if not hasattr(torch, "set_default_device"):
        pytest.skip("torch.set_default_device is torch 2.x")
    shape = dict(examples=8, microbatch=2, D=3, epochs=2)
    expected = {name: khsgd.Sorter(name, seed=4, **shape).sort().tolist() for name in ["D-RR", "SBW", "KH-SGD"]}
    torch.set_default_device("meta")
    try:
        got = {name: khsgd.Sorter(name, seed=4, **shape).sort().tolist() for name in expected}
    finally:
        torch.set_default_device("cpu")
    assert got == expected


class FakeDraws:
    def __init__(self, dtype=torch.int64, device="cpu", extra=0):
        self.dtype, self.device, self.extra = dtype, device, extra

    def randperm(self, m):
        return torch.arange(m + self.extra, device=self.device).to(self.dtype)

    def uniform(self, count, low, high):
        return torch.zeros(count, dtype=torch.float32)

    def log_of_multiples(self, constant, count):
        return torch.ones(count, dtype=torch.float32)


@pytest.mark.parametrize("draws,error,text", [
    (FakeDraws(dtype=torch.float64), TypeError, "returned torch.float64, expected torch.int64"),
    (FakeDraws(device="meta"), ValueError, "on device meta, expected cpu"),
    (FakeDraws(extra=1), ValueError, "returned 9 values, expected 8"),
])
def test_bad_draws(draws, error, text):
    sorter = khsgd._khsgd.Sorter("D-RR", 1, 0, 8, 2, 3, 2, draws)
    with pytest.raises(error, match=text):
        sorter.sort()


def test_epochs_enforced_in_cpp():
    raw = khsgd._khsgd.Sorter("SBW", 1, 0, 8, 2, 3, 1, khsgd.TorchDraws(torch.Generator().manual_seed(0)))
    raw.sort()
    for _ in range(4):
        raw.step(torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="epochs=1"):
        raw.sort()


def sbw_after(epochs_done, epochs=3):
    sorter = khsgd.Sorter("SBW", examples=8, microbatch=2, D=3, epochs=epochs, seed=2)
    for _ in range(epochs_done):
        sorter.sort()
        for _ in range(4):
            sorter.step(torch.randn(1, 2, 3, generator=torch.Generator().manual_seed(3)))
    return sorter


def test_edited_epochs_refused():
    state = sbw_after(1).state_dict()
    edited = dict(state, epoch=0)  # the dict's epoch edited: the C++ state says 1
    with pytest.raises(ValueError, match="after epoch 1"):
        sbw_after(0).load_state_dict(edited)

    def with_counts(outer, inner):  # the wrapper's epoch count, then the pair sorter's sort_calls
        raw = bytearray(state["sorter"].tolist())
        raw[0:8] = outer.to_bytes(8, "little", signed=True)
        raw[8:16] = inner.to_bytes(8, "little", signed=True)
        return dict(state, epoch=outer, sorter=torch.tensor(list(raw), dtype=torch.uint8))

    with pytest.raises(ValueError, match="5 epochs sorted, the run has 3"):
        sbw_after(0).load_state_dict(with_counts(1, 5))
    with pytest.raises(ValueError, match="after epoch 9"):
        sbw_after(0).load_state_dict(with_counts(9, 1))
    # SBW's counter after 1 epoch (4 decisions) with sort_calls edited to 3: it would walk past
    # its 12 thresholds in the epochs it believes are left; refused.
    with pytest.raises(ValueError, match="SBW's counter 4 does not fit its epoch count 3"):
        sbw_after(0).load_state_dict(with_counts(3, 3))
    fine = sbw_after(0)
    fine.load_state_dict(with_counts(1, 1))
    assert fine.epoch == 1


def test_sizes_that_overflow():
    with pytest.raises(ValueError, match=r"ranks \* examples is more than 2\*\*40"):
        khsgd.Sorter("D-RR", examples=2**33, microbatch=1, D=1, ranks=2**31, rank=0, seed=0)
    with pytest.raises(ValueError, match=r"ranks \* microbatch \* D is more than 2\*\*40"):
        khsgd.Sorter("D-RR", examples=2, microbatch=2, D=2**62, seed=0)


def test_one_sorter_from_two_threads():
    import threading

    class SlowDraws(FakeDraws):
        def __init__(self):
            super().__init__()
            self.inside, self.go = threading.Event(), threading.Event()

        def randperm(self, m):
            self.inside.set()
            self.go.wait(10)
            return super().randperm(m)

    draws = SlowDraws()
    sorter = khsgd._khsgd.Sorter("D-RR", 1, 0, 8, 2, 3, 2, draws)
    first = threading.Thread(target=sorter.sort)
    first.start()
    assert draws.inside.wait(10)
    try:
        with pytest.raises(RuntimeError, match="two threads at once"):
            sorter.sort()
    finally:
        draws.go.set()
        first.join()
    sorter.step(None)  # the first sort() finished: the sorter works on
    assert sorter.step_index == 1


def test_load_state_dict_is_atomic():
    source = khsgd.Sorter("KH-SGD", examples=8, microbatch=2, D=3, epochs=3, seed=7)
    random_epochs(source, 1, torch.Generator().manual_seed(1))
    good = source.state_dict()
    target = khsgd.Sorter("KH-SGD", examples=8, microbatch=2, D=3, epochs=3, seed=5)
    twin = khsgd.Sorter("KH-SGD", examples=8, microbatch=2, D=3, epochs=3, seed=5)
    with pytest.raises(ValueError, match="generator"):
        target.load_state_dict(dict(good, generator=torch.zeros(3, dtype=torch.uint8)))
    with pytest.raises(TypeError, match=r"state\['sorter'\] must be a 1-d uint8 tensor"):
        target.load_state_dict(dict(good, sorter=list(good["sorter"].tolist())))
    with pytest.raises(ValueError, match="longer"):
        target.load_state_dict(dict(good, sorter=torch.cat([good["sorter"], torch.zeros(2, dtype=torch.uint8)])))
    gen_a, gen_b = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert random_epochs(target, 3, gen_a) == random_epochs(twin, 3, gen_b)  # nothing was changed


def test_numpy_integers():
    np = pytest.importorskip("numpy")
    sorter = khsgd.Sorter("D-RR", examples=np.int64(8), microbatch=np.int32(2), D=3, epochs=np.int64(1),
                          seed=np.int64(5))
    assert sorter.sort().tolist() == khsgd.Sorter("D-RR", examples=8, microbatch=2, D=3, seed=5).sort().tolist()


def test_sampler_takes_grab_samplers_options():
    import warnings

    params = {"w": torch.zeros(3)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        khsgd.GraBSampler(range(8), params, "pair", batch_size=4, random_first_epoch=False)
    with pytest.warns(UserWarning, match="random_first_epoch=True is not honoured"):
        khsgd.GraBSampler(range(8), params, "pair", batch_size=4, random_first_epoch=True)
    with pytest.warns(UserWarning, match="prob_balance=True is not honoured"):
        khsgd.GraBSampler(range(8), params, "pair", batch_size=4, prob_balance=True)


def test_load_errors_name_python():
    state = make().state_dict()
    state["sorter"] = state["sorter"][:-3]
    with pytest.raises(ValueError, match="not a state_dict this sorter saved") as caught:
        make().load_state_dict(state)
    assert "--overwrite" not in str(caught.value)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_readme_example_runs_and_learns(capsys):
    """The top README's example for your own loop, as printed there (torch 1.13: its comment's imports)."""
    readme = (SOURCE / "README.md").read_text()
    start = readme.index("```python\n", readme.index("In your own loop")) + len("```python\n")
    code = readme[start:readme.index("```", start)]
    if not hasattr(torch, "func"):
        pytest.importorskip("functorch")
        code = code.replace("from torch.func import functional_call, grad, vmap",
                            "from functorch import grad, vmap\nfrom torch.nn.utils.stateless import functional_call")
    torch.manual_seed(0)
    exec(compile(code, "README.md", "exec"), {})
    losses = [float(line.split()[1]) for line in capsys.readouterr().out.split("\n") if line]
    assert len(losses) == 3 and all(0.0 < v < 0.75 for v in losses)
