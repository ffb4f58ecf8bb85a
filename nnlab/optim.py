"""Optimisers as composable gradient transforms (the optax idea, in numpy).

A transform is a pair of functions in a `GradientTransform`:

- `init(params) -> state` allocates the transform's state (a NamedTuple, buffers included);
- `update(updates, state, params, step) -> (updates, state)` turns incoming updates
  (at the start of a chain: the gradients) into outgoing ones. `step` counts updates from 0.

`chain(a, b, c)` applies a, then b, then c. The familiar optimisers are chains: RMSprop is
`chain(scale_by_rms(), scale_by_learning_rate(eta))`. Adam and momentum take the learning
rate as an argument of their scaling instead (`scale_by_adam(eta=eta)`, `trace(eta=eta)`):
the same updates as chaining `scale_by_learning_rate(eta)`, with one pass over the
parameters fewer. The training loop adds the final updates to the parameters with
`apply_updates`.

Params, gradients and updates share one structure: a list with one dict of arrays per layer,
`[{"W": (n_in, n_out), "b": (n_out,)}, ...]`.

In place, for speed: `update` overwrites the arrays of `updates` and returns them (the
training loop hands over gradient buffers it does not read again); it never writes to
`params`. Buffers are allocated once, in `init`, so a step allocates nothing. Pass copies
of the gradients if you need them afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np

Params = list[dict[str, np.ndarray]]


class Schedule(Protocol):
    """The learning rate of a step: eta(step) (a function, Constant, StepDecay, ...)."""

    def __call__(self, step: int, /) -> float: ...


class GradientTransform(NamedTuple):
    """init(params) -> state; update(updates, state, params, step) -> (updates, state)."""

    init: Callable[[Params], Any]
    update: Callable[[Params, Any, Params, int], tuple[Params, Any]]


class EmptyState(NamedTuple):
    """State of a stateless transform."""


class ChainState(NamedTuple):
    states: tuple


class TraceState(NamedTuple):
    velocity: list[np.ndarray]
    scratch: list[np.ndarray]


class RmsState(NamedTuple):
    nu: list[np.ndarray]
    scratch: list[np.ndarray]


class AdamState(NamedTuple):
    mu: list[np.ndarray]
    nu: list[np.ndarray]


class ScratchState(NamedTuple):
    scratch: list[np.ndarray]


class NoiseState(NamedTuple):
    rng: np.random.Generator
    draws: list[np.ndarray]


def leaves(tree: Params) -> list[np.ndarray]:
    """The arrays of a params-like structure, layer by layer, keys in dict order."""
    return [array for layer in tree for array in layer.values()]


def copy_tree(tree: Params) -> Params:
    """A deep copy of a params-like structure."""
    return [{key: array.copy() for key, array in layer.items()} for layer in tree]


def _zeros_like(tree: Params) -> list[np.ndarray]:
    return [np.zeros_like(array) for array in leaves(tree)]


def _is_weight(array: np.ndarray) -> bool:
    """Weight matrices and kernels (ndim >= 2) are regularised; biases are not."""
    return array.ndim >= 2


def global_norm(tree: Params) -> float:
    """sqrt of the sum of squares of all arrays of `tree`."""
    total = 0.0
    for array in leaves(tree):
        flat = array.reshape(-1)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


def apply_updates(params: Params, updates: Params) -> None:
    """params += updates, in place, array by array."""
    for p, u in zip(leaves(params), leaves(updates), strict=True):
        np.add(p, u, out=p)


# --- composition ------------------------------------------------------------------------

def chain(*transforms: GradientTransform) -> GradientTransform:
    """Apply `transforms` left to right; the state is a ChainState of their states."""

    def init(params: Params) -> ChainState:
        return ChainState(tuple(t.init(params) for t in transforms))

    def update(updates: Params, state: ChainState, params: Params, step: int):
        new_states = []
        for transform, inner in zip(transforms, state.states, strict=True):
            updates, inner = transform.update(updates, inner, params, step)
            new_states.append(inner)
        return updates, ChainState(tuple(new_states))

    return GradientTransform(init, update)


# --- learning rate and schedules --------------------------------------------------------

class Constant(NamedTuple):
    """eta at every step."""

    eta: float

    def __call__(self, step: int) -> float:
        return self.eta


class StepDecay(NamedTuple):
    """eta * decay_rate ** floor(step / decay_every)."""

    eta: float
    decay_rate: float
    decay_every: int

    def __call__(self, step: int) -> float:
        return self.eta * self.decay_rate ** (step // self.decay_every)


class Cosine(NamedTuple):
    """Cosine decay from eta to eta_min over n_steps, then eta_min."""

    eta: float
    n_steps: int
    eta_min: float = 0.0

    def __call__(self, step: int) -> float:
        progress = min(step, self.n_steps) / self.n_steps
        return self.eta_min + 0.5 * (self.eta - self.eta_min) * (1.0 + math.cos(math.pi * progress))


class InverseTime(NamedTuple):
    """eta / (1 + decay * step)."""

    eta: float
    decay: float

    def __call__(self, step: int) -> float:
        return self.eta / (1.0 + self.decay * step)


class CappedInverseTime(NamedTuple):
    """eta / max(1, decay * (step + 1)) = min(eta, (eta / decay) / (step + 1)): eta up to
    step 1 / decay - 1, then falling as 1/t from there, with no blend (InverseTime's
    1 + decay * step halves eta at that step). Step `step` is the last of a run of
    step + 1 steps, so its rate is the constant rate best for that many steps when that is
    T*/N, T* = eta / decay, capped at eta."""

    eta: float
    decay: float

    def __call__(self, step: int) -> float:
        return self.eta / max(1.0, self.decay * (step + 1))


def as_schedule(eta: float | Schedule) -> Schedule:
    """A schedule from a learning rate that is a number or already a schedule."""
    return Constant(float(eta)) if isinstance(eta, int | float) else eta


def scale_by_learning_rate(eta: float | Schedule) -> GradientTransform:
    """updates *= -eta(step): the descent step; `eta` is a number or a schedule."""
    schedule = as_schedule(eta)

    def init(params: Params) -> EmptyState:
        return EmptyState()

    def update(updates: Params, state: EmptyState, params: Params, step: int):
        factor = -schedule(step)
        for u in leaves(updates):
            np.multiply(u, factor, out=u)
        return updates, state

    return GradientTransform(init, update)


# --- moment-based scalings --------------------------------------------------------------

FLUSH_EVERY = 64  # steps between flushes of decaying moments (see flush_before_subnormal)


def flush_before_subnormal(moments: list[np.ndarray], decay: float, step: int) -> None:
    """Every FLUSH_EVERY steps, set to zero the entries of decaying moments (any shape)
    that FLUSH_EVERY more decays could carry below the smallest normal float.

    A moment whose gradient stays 0 (a pixel that is rarely on, a dead unit) decays
    geometrically; unflushed, at b1 = 0.9 in float32 it would spend ~150 steps among the
    subnormal numbers, on which each arithmetic operation costs ~100x. Adam on MNIST has
    thousands such entries from its third epoch on, and they nearly doubled the time of
    its passes. The entries zeroed are below 1e-35 (float32, decay 0.9), so the updates
    change by less than 1e-27 * eta: in practice not at all."""
    if step % FLUSH_EVERY or not 0.0 < decay < 1.0:
        return
    for moment in moments:
        limit = np.finfo(moment.dtype).tiny / decay**FLUSH_EVERY
        np.copyto(moment, 0, where=np.abs(moment) < limit)


def trace(decay: float, nesterov: bool = False, eta: float | Schedule | None = None
          ) -> GradientTransform:
    """Momentum: v = decay * v + g; updates = v (or g + decay * v with nesterov), times
    -eta(step) if `eta` is given (then the copy of v is that multiplication)."""
    schedule = None if eta is None else as_schedule(eta)

    def init(params: Params) -> TraceState:
        return TraceState(_zeros_like(params), _zeros_like(params))

    def update(updates: Params, state: TraceState, params: Params, step: int):
        scale = 1.0 if schedule is None else -schedule(step)
        for g, v, tmp in zip(leaves(updates), state.velocity, state.scratch, strict=True):
            np.multiply(v, decay, out=v)
            np.add(v, g, out=v)
            if nesterov:
                np.multiply(v, decay, out=tmp)
                np.add(g, tmp, out=g)
                if schedule is not None:
                    np.multiply(g, scale, out=g)
            else:
                np.multiply(v, scale, out=g)
        flush_before_subnormal(state.velocity, decay, step)
        return updates, state

    return GradientTransform(init, update)


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8) -> GradientTransform:
    """RMSprop: nu = decay * nu + (1 - decay) * g^2; updates = g / (sqrt(nu) + eps)."""

    def init(params: Params) -> RmsState:
        return RmsState(_zeros_like(params), _zeros_like(params))

    def update(updates: Params, state: RmsState, params: Params, step: int):
        for g, nu, tmp in zip(leaves(updates), state.nu, state.scratch, strict=True):
            np.multiply(g, g, out=tmp)
            tmp *= 1.0 - decay
            nu *= decay
            nu += tmp
            np.sqrt(nu, out=tmp)
            tmp += eps
            np.divide(g, tmp, out=g)
        flush_before_subnormal(state.nu, decay, step)
        return updates, state

    return GradientTransform(init, update)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                  eta: float | Schedule | None = None) -> GradientTransform:
    """Adam (Kingma & Ba 2015): updates = mu_hat / (sqrt(nu_hat) + eps), with the
    bias-corrected moments of t = step + 1 steps; times -eta(step) if `eta` is given.

    The state keeps unnormalised sums, mu = sum_k b1^k g_(t-k) and nu likewise for g^2
    (Adam's moments are (1 - b1) mu and (1 - b2) nu); the constant factors are folded into
    two scalars, which saves two passes over the parameters per step."""
    schedule = None if eta is None else as_schedule(eta)

    def init(params: Params) -> AdamState:
        return AdamState(_zeros_like(params), _zeros_like(params))

    def update(updates: Params, state: AdamState, params: Params, step: int):
        t = step + 1
        # mu_hat / (sqrt(nu_hat) + eps) == factor * mu / (sqrt(nu) + eps / root)
        root = math.sqrt((1.0 - b2) / (1.0 - b2**t))
        factor = (1.0 - b1) / (1.0 - b1**t) / root
        if schedule is not None:
            factor *= -schedule(step)
        eps_t = eps / root
        # every pass writes in place (g itself serves as the scratch once mu has it): a
        # pass into a separate buffer costs up to twice as much on these sizes
        for g, mu, nu in zip(leaves(updates), state.mu, state.nu, strict=True):
            mu *= b1
            mu += g
            g *= g
            nu *= b2
            nu += g
            np.sqrt(nu, out=g)
            g += eps_t
            np.divide(mu, g, out=g)
            g *= factor
        flush_before_subnormal(state.mu, b1, step)
        flush_before_subnormal(state.nu, b2, step)
        return updates, state

    return GradientTransform(init, update)


# --- regularisation and clipping --------------------------------------------------------

def add_decayed_weights(weight_decay: float) -> GradientTransform:
    """L2: updates += weight_decay * W for weight arrays (ndim >= 2), i.e. the gradient of
    weight_decay / 2 * ||W||^2; biases are not decayed."""

    def init(params: Params) -> ScratchState:
        return ScratchState([np.empty_like(p) for p in leaves(params)])

    def update(updates: Params, state: ScratchState, params: Params, step: int):
        for u, p, tmp in zip(leaves(updates), leaves(params), state.scratch, strict=True):
            if _is_weight(p):
                np.multiply(p, weight_decay, out=tmp)
                u += tmp
        return updates, state

    return GradientTransform(init, update)


def add_l1(l1: float) -> GradientTransform:
    """L1: updates += l1 * sign(W) for weight arrays (ndim >= 2), the (sub)gradient of
    l1 * |W|_1; biases are not penalised."""

    def init(params: Params) -> ScratchState:
        return ScratchState([np.empty_like(p) for p in leaves(params)])

    def update(updates: Params, state: ScratchState, params: Params, step: int):
        for u, p, tmp in zip(leaves(updates), leaves(params), state.scratch, strict=True):
            if _is_weight(p):
                np.sign(p, out=tmp)
                tmp *= l1
                u += tmp
        return updates, state

    return GradientTransform(init, update)


def clip_by_global_norm(max_norm: float) -> GradientTransform:
    """Scale all updates by max_norm / ||updates|| when their global norm exceeds max_norm."""

    def init(params: Params) -> EmptyState:
        return EmptyState()

    def update(updates: Params, state: EmptyState, params: Params, step: int):
        norm = global_norm(updates)
        if norm > max_norm:
            factor = max_norm / norm
            for u in leaves(updates):
                u *= factor
        return updates, state

    return GradientTransform(init, update)


# --- noise ------------------------------------------------------------------------------

def noise_std(eta_noise: float, gamma: float, step: int) -> float:
    """sigma_t = sqrt(eta_noise / (1 + t)^gamma) (Neelakantan et al. 2015)."""
    return math.sqrt(eta_noise / (1.0 + step) ** gamma)


def add_noise(
    eta_noise: float, gamma: float = 0.55, seed: int | np.random.Generator | None = 0
) -> GradientTransform:
    """updates += N(0, sigma_t^2) with the annealed variance of `noise_std`, drawn from the
    transform's own Generator (`seed` is an int, a SeedSequence or a Generator).

    First in a chain it is gradient noise (Neelakantan et al. 2015); last, after the
    learning rate, it perturbs the weights directly (weight noise)."""

    def init(params: Params) -> NoiseState:
        return NoiseState(np.random.default_rng(seed), [np.empty_like(p) for p in leaves(params)])

    def update(updates: Params, state: NoiseState, params: Params, step: int):
        sigma = noise_std(eta_noise, gamma, step)
        for u, draw in zip(leaves(updates), state.draws, strict=True):
            state.rng.standard_normal(dtype=draw.dtype, out=draw)
            draw *= sigma
            u += draw
        return updates, state

    return GradientTransform(init, update)


# --- the familiar optimisers ------------------------------------------------------------

def sgd(eta: float | Schedule) -> GradientTransform:
    """Plain gradient descent: updates = -eta * g."""
    return scale_by_learning_rate(eta)


def momentum(eta: float | Schedule, decay: float = 0.9, nesterov: bool = False
             ) -> GradientTransform:
    """Heavy-ball (or Nesterov) momentum: v = decay * v + g, updates = -eta * v."""
    return trace(decay, nesterov, eta)


def rmsprop(eta: float | Schedule, decay: float = 0.9, eps: float = 1e-8) -> GradientTransform:
    """RMSprop: updates = -eta * g / (sqrt(nu) + eps)."""
    return chain(scale_by_rms(decay, eps), scale_by_learning_rate(eta))


def adam(eta: float | Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
         ) -> GradientTransform:
    """Adam: updates = -eta * mu_hat / (sqrt(nu_hat) + eps)."""
    return scale_by_adam(b1, b2, eps, eta)


__all__ = [
    "AdamState", "CappedInverseTime", "ChainState", "Constant", "Cosine", "EmptyState",
    "GradientTransform", "InverseTime", "NoiseState", "Params", "RmsState", "Schedule",
    "ScratchState", "StepDecay",
    "TraceState", "adam", "add_decayed_weights", "add_l1", "add_noise", "apply_updates",
    "as_schedule", "chain", "clip_by_global_norm", "copy_tree", "global_norm", "leaves", "momentum",
    "noise_std", "rmsprop", "scale_by_adam", "scale_by_learning_rate", "scale_by_rms",
    "sgd", "trace",
]
