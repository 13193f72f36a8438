"""khsgd: the khsgd sorters (D-RR, CD-GraB, SBW, KH-SGD, GraB, I-B, SO, fixed) for any PyTorch loop.

``khsgd.Sorter`` is one sorter of the C++ registry for one rank's shard; ``khsgd.GraBSampler`` is a
``torch.utils.data.Sampler`` with grab-sampler's interface over it (python/README.md).
"""

from __future__ import annotations

import operator

import torch

from . import _khsgd
from .sampler import GraBSampler

__all__ = ["Sorter", "GraBSampler", "TorchDraws", "sorter_names", "sorter_info"]


def sorter_names() -> list[str]:
    """Every registered sorter's name, as khsgd_train --list-sorters shows them."""
    return _khsgd.sorter_names()


def sorter_info(name: str) -> dict:
    """One sorter's name, description, needs ('none', 'own_rank', 'all_ranks'), even_microbatch."""
    return _khsgd.sorter_info(name)


class TorchDraws:
    """The sorters' random numbers from a CPU torch.Generator (docs/ALGORITHM.md §5).

    The same calls as khsgd_train's LibTorch draws (src/torch/torch_ops.cpp), so the same generator
    state gives the same numbers. Every tensor is made on the CPU whatever torch's default device
    (torch.set_default_device): the sorters read them from host memory.
    """

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def randperm(self, m: int) -> torch.Tensor:
        return torch.randperm(m, generator=self.generator, dtype=torch.int64, device="cpu")

    def uniform(self, count: int, low: float, high: float) -> torch.Tensor:
        return torch.empty(count, dtype=torch.float32, device="cpu").uniform_(low, high, generator=self.generator)

    def log_of_multiples(self, constant: float, count: int) -> torch.Tensor:
        return torch.log(torch.arange(1, count + 1, dtype=torch.float32, device="cpu") * constant)


def _generator(seed, generator) -> torch.Generator:
    if generator is not None and seed is not None:
        raise ValueError("khsgd.Sorter: give seed or generator, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"khsgd.Sorter: generator must be a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != "cpu":
            raise ValueError(f"khsgd.Sorter: generator must be a CPU generator, got {generator.device}")
        return generator
    if seed is None:
        return torch.default_generator
    return torch.Generator().manual_seed(_integer("seed", seed))


def _integer(key, value) -> int:
    """An int, or any integer type (NumPy's) through operator.index; not a bool."""
    if isinstance(value, bool):
        raise TypeError(f"khsgd.Sorter: {key} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"khsgd.Sorter: {key} must be an int, got {type(value).__name__}") from None


class Sorter:
    """One sorter of the registry, for rank ``rank`` of ``ranks``, each with ``examples`` examples.

    Per epoch: ``order = sorter.sort()`` (this rank's order of 0 .. examples-1, a LongTensor), then
    one ``sorter.step(G)`` per step with that step's per-example gradients, a float32 CPU tensor
    [ranks fed, microbatch, D] (``ranks_fed`` is ``ranks`` for sorters that need every rank's
    gradients, else 1), the rows in the order's positions k*microbatch .. (k+1)*microbatch - 1.
    ``seed`` gives a generator of its own; ``generator`` a given CPU torch.Generator; neither,
    torch's default generator (as khsgd_train, which draws after the model's init). The generator's
    state is part of state_dict(), so with neither, load_state_dict() sets torch's global (default
    generator's) RNG state.
    """

    def __init__(self, name: str, *, examples: int, microbatch: int, D: int, epochs: int = 1,
                 ranks: int = 1, rank: int = 0, seed: int | None = None,
                 generator: torch.Generator | None = None):
        examples, microbatch, D, epochs, ranks, rank = (
            _integer(key, value) for key, value in (("examples", examples), ("microbatch", microbatch), ("D", D),
                                                    ("epochs", epochs), ("ranks", ranks), ("rank", rank)))
        if not isinstance(name, str):
            raise TypeError(f"khsgd.Sorter: name must be a str (one of {sorter_names()}), got {type(name).__name__}")
        self.generator = _generator(seed, generator)
        self.shape = dict(ranks=ranks, rank=rank, examples=examples, microbatch=microbatch, D=D, epochs=epochs)
        self._sorter = _khsgd.Sorter(name, ranks, rank, examples, microbatch, D, epochs, TorchDraws(self.generator))

    name = property(lambda self: self._sorter.name)
    needs = property(lambda self: self._sorter.needs)
    ranks_fed = property(lambda self: self._sorter.ranks_fed)
    steps_per_epoch = property(lambda self: self._sorter.steps_per_epoch)
    epoch = property(lambda self: self._sorter.epoch, doc="sort() calls so far (kept by the C++ sorter)")
    step_index = property(lambda self: self._sorter.step_index, doc="step() calls in this epoch so far")

    def sort(self) -> torch.Tensor:
        """The next epoch's order; refused mid-epoch (every step's step() first) and past epochs."""
        raw = self._sorter.sort()
        return torch.frombuffer(bytearray(raw), dtype=torch.int64)

    def step(self, G: torch.Tensor | None) -> None:
        """Step k's gradients; None for a sorter whose needs are "none" (D-RR, SO, fixed).

        CUDA gradients are copied to the host first (on torch's current stream, which the copy
        waits for): the walk itself runs on the CPU in this module.
        """
        if isinstance(G, torch.Tensor) and G.is_cuda:
            G = G.to("cpu")
        self._sorter.step(G)

    def state_dict(self) -> dict:
        """Between epochs: what the next sort() and later epochs depend on, the generator included."""
        raw = self._sorter.state()
        return {"name": self.name, "shape": dict(self.shape), "epoch": self.epoch,
                "sorter": torch.tensor(list(raw), dtype=torch.uint8),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"khsgd.Sorter.load_state_dict: expected a dict, got {type(state).__name__}")
        if state.get("name") != self.name or state.get("shape") != self.shape:
            raise ValueError(f"khsgd.Sorter.load_state_dict: the state is of {state.get('name')} "
                             f"{state.get('shape')}, this sorter is {self.name} {self.shape}")
        raw, generator, epoch = state.get("sorter"), state.get("generator"), state.get("epoch")
        for key, value in (("sorter", raw), ("generator", generator)):
            if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.dim() != 1:
                raise TypeError(f"khsgd.Sorter.load_state_dict: state[{key!r}] must be a 1-d uint8 tensor, "
                                f"got {type(value).__name__}")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"khsgd.Sorter.load_state_dict: state['epoch'] must be an int, got {type(epoch).__name__}")
        # Everything checked before anything changes: the generator's state on a scratch generator
        # (torch refuses a bad one there), then the sorter's (which refuses before it changes).
        try:
            torch.Generator().set_state(generator)
        except RuntimeError as e:
            raise ValueError(f"khsgd.Sorter.load_state_dict: state['generator'] is not a CPU generator's state ({e})") from None
        self._sorter.load_state(bytes(raw.tolist()), epoch)
        self.generator.set_state(generator)
