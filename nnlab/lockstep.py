"""Lockstep: runs that share a data order trained together as one wide network.

Runs with the same architecture, batch size, length, evaluation steps and data order (the
learning rates of one seed in an eta sweep, the noise arms of one seed, the init seeds of a
study that holds the order) see the same batches. `train_group` trains them as one
`StackedMLP`: one batch gather a step, one wide GEMM forward and one for the weight
gradient of the first layer, every other pass over all runs at once. Each run keeps its
own loop (`nnlab.train.run_loop`: its evaluations, curve and divergence rule), learning
rate and schedule, noise, seeds and early end: a run that diverges drops out, the others
go on. Each Run equals `train(config, data)` at one BLAS thread (a study worker's setting)
bit for bit: curve, metrics, predictions, final parameters; only wall times differ
(`seconds` counts the group's time).

Updates: plain SGD, with gradient or weight noise or none, runs on all runs at once (the
chain of `make_optimizer`: noise, -eta(step) times the gradient, weight noise); runs whose
noise streams have one seed (the noise arms of one seed) share their draws, as they draw the
same numbers. Any other optimiser (momentum, Adam, weight decay, clipping, ...) updates
each run by its own chain on its own model's arrays (`Stepper.update`), the forward and
backward passes still stacked.

A run's `on_eval` (see `nnlab.train.train`) sees its own evaluations; one that stops its
run takes it out of the stack at that evaluation, and the others go on.

Not grouped (`group_key` is None): CNNs and model builders (only the built-in MLP is
stacked), batch size 1 (the per-example fused path), and runs that measure the gradient
noise scale (TrainConfig.noise_scale_examples).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from nnlab import optim
from nnlab.datasets import Dataset
from nnlab.errors import ConfigError
from nnlab.nn.model import MLP, Sequential
from nnlab.nn.stacked import StackedMLP
from nnlab.run import Run
from nnlab.train import (
    OnEval,
    RunStart,
    Stepped,
    Stepper,
    _Batches,
    resolve_batch_size,
    run_loop,
    start_run,
)
from nnlab.train_config import TrainConfig, available_memory, mlp_bytes

SHARED = ("model", "sizes", "activation", "output", "loss", "target_range", "dtype",
          "batch_size", "n_steps", "epochs", "n_evals", "eval_steps")
"""TrainConfig fields that the runs of a group share (with the order stream's seed)."""
GROUP_BYTES = 3 * 2**19
"""A group takes at most as many runs as keep their first layers' weights side by side
within this many bytes (1.5 MB): past a core's L2 cache the wide products slow down."""
MAX_GROUP = 16


def is_plain_sgd_with_noise(config: TrainConfig) -> bool:
    """Plain SGD, with or without gradient or weight noise: updated on the whole stack."""
    return (config.optimizer == "sgd" and not config.weight_decay and not config.l1
            and config.clip_norm is None)


def max_group_size(config: TrainConfig) -> int:
    """How many runs of `config` one group takes at most (2 to MAX_GROUP, see GROUP_BYTES)."""
    first_layer = config.sizes[0] * config.sizes[1] * np.dtype(config.dtype).itemsize
    return max(2, min(MAX_GROUP, GROUP_BYTES // first_layer))


def group_key(config: TrainConfig) -> str | None:
    """A key that runs which may train in one lockstep group share, or None when `config`
    does not train in lockstep (a CNN or a model builder; batch size 1; a run that measures
    the gradient noise scale, which reads its own model's parameters)."""
    if config.model != "mlp" or config.batch_size == 1 or config.noise_scale_examples:
        return None
    order_seed = config.seed if config.order_seed is None else config.order_seed
    return json.dumps({"shared": {name: getattr(config, name) for name in SHARED},
                       "order_seed": order_seed,
                       "stacked_update": is_plain_sgd_with_noise(config)}, sort_keys=True)


def fits_in_memory(configs: Sequence[TrainConfig], data: Dataset) -> bool:
    """Whether the runs of `configs` (one group_key) fit in the memory available here as
    one group: each run holds its own arrays (`mlp_bytes`) and its copy in the stack."""
    available = available_memory()
    batch_size = resolve_batch_size(configs[0], len(data.train))
    return available is None or sum(2 * mlp_bytes(config, batch_size)
                                    for config in configs) <= available


def train_group(configs: Sequence[TrainConfig], data: Dataset,
                on_evals: Sequence[OnEval | None] | None = None) -> list[Run]:
    """Train `configs`, which share one `group_key`, in lockstep on `data`: the Runs of
    `train(config, data, on_eval)` at one BLAS thread, in order, with `on_evals` one
    callback (or None) per config. BLAS runs on one thread here."""
    configs = list(configs)
    on_evals = [None] * len(configs) if on_evals is None else list(on_evals)
    if len(on_evals) != len(configs):
        raise ConfigError("train_group.on_evals", f"one on_eval per config ({len(configs)})",
                          shown=f"{len(on_evals)}")
    keys = {group_key(config) if isinstance(config, TrainConfig) else None
            for config in configs}
    if not configs or None in keys or len(keys) > 1:
        raise ConfigError("train_group.configs", "TrainConfigs that share one group_key (an "
                          "MLP's architecture, batch size > 1, length, evaluation steps and "
                          "data order)", shown="no configs" if not configs else
                          f"{len(configs)} configs of {len(keys)} keys"
                          + (" (some do not train in lockstep)" if None in keys else ""))
    with threadpool_limits(limits=1), np.errstate(over="ignore", invalid="ignore",
                                                  divide="ignore"):
        return _Group(configs, data, on_evals).train()


class _Group:
    """The runs of one group: their loops, their stacked network and its updates."""

    def __init__(self, configs: list[TrainConfig], data: Dataset,
                 on_evals: list[OnEval | None]) -> None:
        self.started = time.perf_counter()
        self.starts = [start_run(config, data) for config in configs]
        self.models = [_mlp(start.model) for start in self.starts]
        first = self.starts[0]
        self.stack = StackedMLP(self.models)
        self.batches = _Batches(data.train, first.model.dtype, first.batch_size,
                                first.rngs["order"])
        self.active = list(range(len(configs)))  # the runs in the stack, in its order
        self.update = (_StackedSgd(self.starts, self.stack)
                       if is_plain_sgd_with_noise(first.config)
                       else _OwnChains(self.starts, self.models, self.stack, self.batches))
        self.evaluation_due = True  # every run in the stack evaluates before the next step
        self._evaluations: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._alike: bool | None = None  # the runs' parameters all alike (until the next step)
        self.loops = [run_loop(start, data, self.started, on_eval, _Member(self, i, model))
                      for i, (start, model, on_eval) in enumerate(zip(
                          self.starts, self.models, on_evals, strict=True))]

    def train(self) -> list[Run]:
        """Step the runs in the stack through the segments their loops ask for, all
        alike, until every loop has returned its Run."""
        runs: list[Run | None] = [None] * len(self.starts)
        segments = {i: next(loop) for i, loop in enumerate(self.loops)}
        while self.active:
            segment = segments[self.active[0]]
            if any(segments[i] != segment for i in self.active):
                # their configs share the length and evaluation steps (group_key)
                raise RuntimeError(f"train_group: runs of one group asked for different "
                                   f"steps ({sorted(set(segments[i] for i in self.active))})")
            stepped = self._run(*segment)
            self.evaluation_due = segment[2]  # the segment ends at an evaluation step
            for i, result in stepped.items():
                try:
                    segments[i] = self.loops[i].send(result)
                except StopIteration as end:
                    runs[i] = end.value
            self._drop([i for i in self.active if runs[i] is not None])
        return runs  # type: ignore[return-value]

    def _run(self, first: int, stop: int, grad_norm_of_last: bool) -> dict[int, Stepped]:
        """Steps first..stop-1 of every run in the stack, as `Stepper.run` makes them for
        each (a run whose loss is not finite drops out after that step)."""
        self._evaluations.clear()
        self._alike = None
        losses: dict[int, list[float]] = {i: [] for i in self.active}
        norms = dict.fromkeys(self.active, math.nan)
        for step in range(first, stop):
            x, y = self.batches.next()
            step_losses = self.stack.loss_and_grads(x, y).tolist()
            if grad_norm_of_last and step == stop - 1:
                for position, i in enumerate(self.active):
                    model = self.models[i]
                    self.stack.copy_to(position, model, grads=True)
                    norms[i] = optim.global_norm(model.grads)
            self.update.step(step)
            for i, loss in zip(self.active, step_losses, strict=True):
                losses[i].append(loss)
            if not sum(step_losses) < math.inf:  # a loss is inf or NaN (or the sum overflows)
                self._drop([i for i, loss in zip(self.active, step_losses, strict=True)
                            if not loss < math.inf])
                if not self.active:
                    break
        return {i: (losses[i], norms[i]) for i in losses}

    def _drop(self, runs: list[int]) -> None:
        """Take `runs` out of the stack, their models set to their parameters."""
        if not runs:
            return
        for i in runs:
            self.stack.copy_to(self.active.index(i), self.models[i])
        kept = [position for position, i in enumerate(self.active) if i not in runs]
        self.stack.keep(kept)
        self.update.keep(kept)
        self.active = [self.active[position] for position in kept]
        self._evaluations.clear()
        self._alike = None

    def loss_and_proba(self, i: int, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Run i's `loss_and_proba` of x, y (see `_outputs`)."""
        return self._outputs(i, x, y)

    def predict_proba(self, i: int, x: np.ndarray) -> np.ndarray:
        """Run i's `predict_proba` of x (see `_outputs`)."""
        return self._outputs(i, x, None)[1]

    def _outputs(self, i: int, x: np.ndarray, y: np.ndarray | None
                 ) -> tuple[float, np.ndarray]:
        """Run i's loss and outputs of x, y (y None: the outputs alone, the loss NaN): when
        every run in the stack evaluates, from one pass for all of them (`_evaluate`, kept
        until the next step); else its model's own."""
        model = self.models[i]
        if i not in self.active or not self.evaluation_due:
            if i in self.active:
                self.stack.copy_to(self.active.index(i), model)
            return _own_outputs(model, x, y)
        key = (x.__array_interface__["data"][0], x.shape,
               None if y is None else y.__array_interface__["data"][0])
        if key not in self._evaluations:
            self._evaluations[key] = self._evaluate(x, y)
        losses, proba = self._evaluations[key]
        position = self.active.index(i)
        return float(losses[position]), proba[position]

    def _evaluate(self, x: np.ndarray, y: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The losses (k,) (NaN with y None) and outputs (k, n, K) of every run in the
        stack on x, y: one stacked pass; or, when their parameters are all alike bit for
        bit (the runs of one init seed before their first step: an eta sweep's, a seed's
        noise arms), the first run's model's own pass, shared: the outputs of each run
        alone."""
        if self._alike is None:
            self._alike = self.stack.alike()
        k = len(self.active)
        if not self._alike:
            if y is None:
                return np.full(k, math.nan), self.stack.proba(x)
            return self.stack.loss_and_proba(x, y)
        model = self.models[self.active[0]]
        self.stack.copy_to(0, model)
        loss, proba = _own_outputs(model, x, y)
        return np.full(k, loss), np.broadcast_to(proba, (k, *proba.shape))


def _own_outputs(model: MLP, x: np.ndarray, y: np.ndarray | None) -> tuple[float, np.ndarray]:
    """The model's `loss_and_proba` of x, y; with y None its `predict_proba` of x, the loss
    NaN."""
    if y is None:
        return math.nan, model.predict_proba(x)
    return model.loss_and_proba(x, y)


def _mlp(model: Sequential) -> MLP:
    assert isinstance(model, MLP)  # group_key: config.model is "mlp"
    return model


class _Member:
    """Run i of a group as `evaluate` sees a model: its outputs come from the group."""

    def __init__(self, group: _Group, i: int, model: MLP) -> None:
        self.group, self.i = group, i
        self.n_classes, self.head = model.n_classes, model.head

    def loss_and_proba(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        return self.group.loss_and_proba(self.i, x, y)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.group.predict_proba(self.i, x)


class _StackedSgd:
    """The updates of plain SGD with or without noise (`make_optimizer`'s chain [gradient
    noise] sgd [weight noise]) for every run in the stack at once: u = -eta(step) * (g +
    noise) or -eta(step) * g + noise; params += u. Noise is drawn, array by array in the
    params' order, from one stream per noise seed: runs with the same noise seed draw the
    same numbers, so they share them, each scaling them by its own sigma_t."""

    def __init__(self, starts: list[RunStart], stack: StackedMLP) -> None:
        self.stack = stack
        self.runs = list(starts)  # in stack order
        self.streams: dict[int, tuple[np.random.Generator, list[np.ndarray]]] = {}
        leaves = optim.leaves(starts[0].model.params)
        for start in starts:
            if start.config.noise != "none" and start.seeds["noise"] not in self.streams:
                draws = [np.empty_like(p) for p in leaves]
                self.streams[start.seeds["noise"]] = (start.rngs["noise"], draws)
        self._scaled = [np.empty_like(p) for p in leaves]  # sigma_t * draws of one run
        self._factors: np.ndarray | None = None
        self._noisy = self._positions_by_noise()

    def keep(self, positions: list[int]) -> None:
        self.runs = [self.runs[position] for position in positions]
        used = {run.seeds["noise"] for run in self.runs if run.config.noise != "none"}
        self.streams = {seed: stream for seed, stream in self.streams.items() if seed in used}
        self._factors = None
        self._noisy = self._positions_by_noise()

    def _positions_by_noise(self) -> dict[str, list[int]]:
        """The stack positions of the runs with gradient and with weight noise."""
        return {kind: [position for position, run in enumerate(self.runs)
                       if run.config.noise == kind] for kind in ("grad", "weight")}

    def step(self, step: int) -> None:
        stack = self.stack
        drawn = {seed: self._draw(rng, draws) for seed, (rng, draws) in self.streams.items()}
        self._add_noise("grad", step, drawn)
        stack.scale_grads(self._rates(step))
        self._add_noise("weight", step, drawn)
        stack.W0 += stack.grad_W0
        stack.rest += stack.grad_rest

    def _rates(self, step: int) -> np.ndarray:
        """-eta(step) of every run as factors of the stack's grads (kept while constant)."""
        if self._factors is not None:
            return self._factors
        factors = self.stack.run_factors([-run.schedule(step) for run in self.runs])
        if all(isinstance(run.schedule, optim.Constant) for run in self.runs):
            self._factors = factors
        return factors

    @staticmethod
    def _draw(rng: np.random.Generator, draws: list[np.ndarray]) -> list[np.ndarray]:
        """The standard normal draws of one step, as `optim.add_noise` makes them."""
        for draw in draws:
            rng.standard_normal(dtype=draw.dtype, out=draw)
        return draws

    def _add_noise(self, kind: str, step: int, drawn: dict[int, list[np.ndarray]]) -> None:
        """grads += sigma_t * draws for the runs with noise `kind`, as `optim.add_noise`."""
        for position in self._noisy[kind]:
            run = self.runs[position]
            sigma = optim.noise_std(run.config.noise_eta, run.config.noise_gamma, step)
            grads = optim.leaves(self.stack.member_grads(position))
            for grad, draw, scaled in zip(grads, drawn[run.seeds["noise"]], self._scaled,
                                          strict=True):
                grad += np.multiply(draw, sigma, out=scaled)


class _OwnChains:
    """Each run updated by its own optimiser chain (`Stepper.update`) on its own model's
    arrays: its gradients copied there from the stack, its parameters back."""

    def __init__(self, starts: list[RunStart], models: list[MLP], stack: StackedMLP,
                 batches: _Batches) -> None:
        self.stack = stack
        self.runs = [(model, Stepper(start.config, model, start.schedule, batches,
                                     start.rngs["noise"]))
                     for start, model in zip(starts, models, strict=True)]

    def keep(self, positions: list[int]) -> None:
        self.runs = [self.runs[position] for position in positions]

    def step(self, step: int) -> None:
        for position, (model, stepper) in enumerate(self.runs):
            self.stack.copy_to(position, model, grads=True)
            stepper.update(step)
            self.stack.copy_from(position, model)
