"""khsgd.GraBSampler: grab-sampler's GraBSampler interface over the khsgd sorters (python/README.md)."""

from __future__ import annotations

import warnings
from typing import Sized

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

# grab-sampler's balance_type values that name a rule khsgd has (the rest are refused).
GRAB_NAMES = {"rr": "D-RR", "pair": "CD-GraB", "mean": "GraB", "fixed": "fixed", "so": "SO"}


def _global_rank(group, rank: int) -> int:
    if hasattr(dist, "get_global_rank"):  # torch 2.x
        return dist.get_global_rank(group, rank)
    return dist.distributed_c10d._get_global_rank(group, rank)  # torch 1.13


class GraBSampler(Sampler):
    """An epoch's order of this rank's shard, from a khsgd sorter fed each step's gradients.

    As grab-sampler's: ``GraBSampler(data_source, trainable_params, balance_type=...)``, iterate it
    for an epoch's indices (into ``data_source``), and after each step's backward pass call
    ``step(per_sample_grads)`` with a dict of per-parameter per-example gradients ([batch, ...]
    each, the same keys as ``trainable_params``). ``balance_type`` is any of khsgd.sorter_names()
    or grab-sampler's "rr", "pair", "mean", "fixed", "so". khsgd needs the shape up front:
    ``batch_size`` (examples per rank and step) and ``epochs``; ``seed`` or ``generator`` as
    khsgd.Sorter. The default balance_type is "CD-GraB" (grab-sampler's is "mean", khsgd's "GraB").
    grab-sampler's other keyword options are accepted with a warning where khsgd cannot honour them
    (random_first_epoch=False needs none: khsgd's balancing sorters start in the natural order). Under an initialised torch.distributed default group, rank r of n gets the
    contiguous shard [r*m, (r+1)*m) with m = (len(data_source) // (n*batch_size)) * batch_size,
    and step() all-gathers what the sorter needs. The sorters that draw for every rank at once (SBW's
    thresholds, KH-SGD's uniforms) must draw the same numbers on every rank, so at construction the
    generator (``seed``'s, ``generator``, or with neither torch's default generator) is set to rank
    0's state on every rank: with neither, that changes the global RNG state of the other ranks.
    """

    def __init__(self, data_source: Sized, trainable_params: dict, balance_type: str = "CD-GraB",
                 device=None, timer=None, record_orders: bool = False, *, batch_size: int,
                 epochs: int = 1, seed: int | None = None, generator: torch.Generator | None = None,
                 process_group=None, **grab_kwargs):
        from . import Sorter, _generator, sorter_names

        del device, timer  # grab-sampler's; khsgd's sorters keep their state on the CPU
        for key, value in grab_kwargs.items():  # grab-sampler's other options: accepted, warned
            if key == "random_first_epoch" and not value:
                continue  # khsgd's balancing sorters start in the natural order anyway
            why = ("khsgd's balancing sorters start in the natural order; use 'SO' or 'D-RR' for random orders"
                   if key == "random_first_epoch" else "khsgd has no such option")
            warnings.warn(f"khsgd.GraBSampler: grab-sampler's {key}={value!r} is not honoured ({why})",
                          UserWarning, stacklevel=2)
        if not isinstance(balance_type, str):
            balance_type = getattr(balance_type, "value", balance_type)
        name = GRAB_NAMES.get(balance_type, balance_type)
        if name not in sorter_names():
            raise ValueError(f"khsgd.GraBSampler: balance_type {balance_type!r} is not a khsgd sorter; "
                             f"expected one of {sorter_names()} or {sorted(GRAB_NAMES)}")
        self.group = process_group
        distributed = dist.is_available() and dist.is_initialized()
        self.ranks = dist.get_world_size(process_group) if distributed else 1
        self.rank = dist.get_rank(process_group) if distributed else 0
        self.keys = list(trainable_params)
        self.D = sum(p.numel() for p in trainable_params.values())
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"khsgd.GraBSampler: batch_size must be a positive int (examples per rank and step), got {batch_size!r}")
        self.m = (len(data_source) // (self.ranks * batch_size)) * batch_size
        if self.m == 0:
            raise ValueError(f"khsgd.GraBSampler: {len(data_source)} examples are fewer than one step of "
                             f"{self.ranks} ranks x batch_size {batch_size}")
        self.batch_size = batch_size
        generator = _generator(seed, generator)
        if distributed and self.ranks > 1:  # every rank draws from rank 0's generator state
            src = 0 if process_group is None else _global_rank(process_group, 0)
            box = [generator.get_state()]
            dist.broadcast_object_list(box, src=src, group=process_group)
            generator.set_state(box[0])
        self.sorter = Sorter(name, examples=self.m, microbatch=batch_size, D=self.D, epochs=epochs,
                             ranks=self.ranks, rank=self.rank, generator=generator)
        self.record_orders = record_orders
        self.orders_history: list[list[int]] = []
        self.order = None

    def __iter__(self):
        try:
            self.order = self.sorter.sort()
        except ValueError as e:
            if "the epoch had" not in str(e):
                raise
            raise ValueError(f"khsgd.GraBSampler: a new epoch began (iter) before the last one's steps were done "
                             f"({e}). Call step() after every batch of the epoch; a loop that stops early cannot "
                             f"go on with this sampler (build a new one, or load_state_dict from the last epoch's "
                             f"end)") from None
        if self.record_orders:
            self.orders_history.append(self.order.tolist())
        return iter((self.order + self.rank * self.m).tolist())

    def __len__(self) -> int:
        return self.m

    def flatten(self, per_sample_grads: dict) -> torch.Tensor:
        """[batch_size, D] float32: each parameter's per-example gradients flattened, in key order."""
        if not isinstance(per_sample_grads, dict):
            raise TypeError(f"khsgd.GraBSampler.step: expected a dict of per-example gradients, got {type(per_sample_grads).__name__}")
        if sorted(per_sample_grads) != sorted(self.keys):
            raise ValueError(f"khsgd.GraBSampler.step: expected gradients for {self.keys}, got {list(per_sample_grads)}")
        rows = []
        for key in self.keys:
            g = per_sample_grads[key]
            if not isinstance(g, torch.Tensor):
                raise TypeError(f"khsgd.GraBSampler.step: {key} must be a torch.Tensor, got {type(g).__name__}")
            if g.dim() < 1 or g.shape[0] != self.batch_size:
                raise ValueError(f"khsgd.GraBSampler.step: {key} must be [batch_size={self.batch_size}, ...], got {list(g.shape)}")
            rows.append(g.detach().reshape(self.batch_size, -1))
        return torch.cat(rows, dim=1).to(torch.float32)

    def step(self, per_sample_grads: dict, *args, **kwargs) -> None:
        if self.sorter.needs == "none":
            self.sorter.step(None)
            return
        G = self.flatten(per_sample_grads)
        if self.sorter.ranks_fed > 1:
            parts = [torch.empty_like(G) for _ in range(self.ranks)]
            dist.all_gather(parts, G.contiguous(), group=self.group)
            G = torch.stack(parts)
        else:
            G = G.unsqueeze(0)
        self.sorter.step(G.cpu().contiguous())

    def state_dict(self) -> dict:
        return {"sorter": self.sorter.state_dict(), "orders_history": list(self.orders_history)}

    def load_state_dict(self, state: dict) -> None:
        self.sorter.load_state_dict(state["sorter"])
        self.orders_history = list(state.get("orders_history", []))
