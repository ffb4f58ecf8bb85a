"""One training run: `train(config, data) -> Run`.

The loop draws minibatches from the order stream, asks the model for the loss and its
gradients, lets the optimiser (a chain of gradient transforms built from the config) turn
them into updates and adds those to the parameters. Plain SGD skips the chain and uses the
model's fused in-place step (BLAS level 2 at batch size 1). Evaluations on val and test
happen at the config's evaluation steps; a loss that becomes NaN/inf or explodes ends the
run with status "diverged".
"""

from __future__ import annotations

import math
import time
import weakref
from contextlib import nullcontext

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from nnlab import optim
from nnlab.datasets import Dataset, Split
from nnlab.errors import NNLabError
from nnlab.nn.model import MLP, Sequential
from nnlab.presets import PRESETS, Preset, get_preset
from nnlab.run import CURVE_COLUMNS, Run
from nnlab.train_config import TrainConfig

EVAL_CHUNK_ROWS = 2000
REFERENCE_ROWS = 2048  # the first training rows: their initial loss is the reference
WINDOW_SAMPLES = 256  # the explosion rule compares the mean loss over >= this many samples
STREAMS = ("init", "order", "noise", "dropout")  # child i of SeedSequence(seed)

__all__ = ["PRESETS", "Preset", "Run", "TrainConfig", "get_preset", "train"]


# --- seeds, sizes, schedule, optimiser --------------------------------------------------

def stream_seeds(config: TrainConfig) -> dict[str, int]:
    """The seed behind each stream: the stream's own *_seed field, else `seed`."""
    seeds = {"seed": config.seed}
    for name in STREAMS:
        override = getattr(config, f"{name}_seed")
        seeds[name] = config.seed if override is None else override
    return seeds


def stream_rngs(seeds: dict[str, int]) -> dict[str, np.random.Generator]:
    """Stream i of STREAMS is child i of SeedSequence(seeds[name]): independent streams,
    and overriding one seed changes only that stream."""
    return {
        name: np.random.default_rng(np.random.SeedSequence(seeds[name]).spawn(i + 1)[i])
        for i, name in enumerate(STREAMS)
    }


def resolve_batch_size(config: TrainConfig, n_train: int) -> int:
    """The batch size in examples (None = the whole training split)."""
    if config.batch_size is None:
        return n_train
    if config.batch_size > n_train:
        raise NNLabError(
            f"TrainConfig.batch_size: expected at most the {n_train} training examples "
            f"(or null for full batch), got {config.batch_size}"
        )
    return config.batch_size


def resolve_n_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    if config.n_steps is not None:
        return config.n_steps
    return max(1, round(config.epochs * steps_per_epoch))


def eval_schedule(config: TrainConfig, n_steps: int) -> list[int]:
    """Steps at which the model is evaluated (before that step runs); always 0 and n_steps.

    Default: n_evals points, log-spaced in 1..n_steps, plus step 0."""
    if config.eval_steps is not None:
        late = [s for s in config.eval_steps if s > n_steps]
        if late:
            raise NNLabError(
                f"TrainConfig.eval_steps: expected steps <= n_steps ({n_steps}), got {late}"
            )
        steps = set(config.eval_steps)
    else:
        steps = set(np.unique(np.rint(np.geomspace(1, n_steps, config.n_evals - 1))).astype(int)
                    .tolist())
    return sorted(steps | {0, n_steps})


def make_schedule(config: TrainConfig, n_steps: int) -> optim.Schedule:
    if config.schedule == "step":
        return optim.StepDecay(config.eta, config.decay_rate, config.decay_every)
    if config.schedule == "cosine":
        return optim.Cosine(config.eta, n_steps, config.eta_min)
    if config.schedule == "inv_t":
        return optim.InverseTime(config.eta, config.inv_t_decay)
    return optim.Constant(config.eta)


def make_optimizer(
    config: TrainConfig, schedule: optim.Schedule, noise_rng: np.random.Generator
) -> optim.GradientTransform:
    """The config's chain: [L2] [L1] [clip] [gradient noise] optimiser (with the schedule)
    [weight noise]."""
    parts = []
    if config.weight_decay:
        parts.append(optim.add_decayed_weights(config.weight_decay))
    if config.l1:
        parts.append(optim.add_l1(config.l1))
    if config.clip_norm is not None:
        parts.append(optim.clip_by_global_norm(config.clip_norm))
    noise = optim.add_noise(config.noise_eta, config.noise_gamma, noise_rng)
    if config.noise == "grad":
        parts.append(noise)
    if config.optimizer == "sgd":
        parts.append(optim.sgd(schedule))
    elif config.optimizer in ("momentum", "nesterov"):
        parts.append(optim.momentum(schedule, config.momentum,
                                    nesterov=config.optimizer == "nesterov"))
    elif config.optimizer == "rmsprop":
        parts.append(optim.rmsprop(schedule, config.rms_decay, config.eps))
    else:
        parts.append(optim.adam(schedule, config.adam_beta1, config.adam_beta2, config.eps))
    if config.noise == "weight":
        parts.append(noise)
    return optim.chain(*parts)


def is_plain_sgd(config: TrainConfig) -> bool:
    """True when the update is just -eta(step) * gradient (the model's fused step applies)."""
    return (config.model == "mlp" and config.optimizer == "sgd" and not config.weight_decay
            and not config.l1 and config.clip_norm is None and config.noise == "none")


def build_model(config: TrainConfig, data: Dataset, rngs: dict[str, np.random.Generator]
                ) -> Sequential:
    """The config's network for `data`, initialised from the init stream."""
    if config.sizes[0] != data.n_features or config.sizes[-1] != data.n_classes:
        raise NNLabError(
            f"TrainConfig.sizes: expected [{data.n_features}, ..., {data.n_classes}] to match "
            f"the data ({data.n_features} features, {data.n_classes} classes), "
            f"got {config.sizes}"
        )
    if config.model == "cnn":
        from nnlab.nn.cnn import CNN

        return CNN(config.layers, data.image_shape, data.n_classes,
                   activation=config.activation, output=config.output, loss=config.loss,
                   init=config.init, dtype=config.dtype, seed=rngs["init"],
                   target_range=tuple(config.target_range), dropout_rng=rngs["dropout"])
    return MLP(config.sizes, activation=config.activation, output=config.output,
               loss=config.loss, init=config.init, init_std=config.init_std,
               dtype=config.dtype, seed=rngs["init"], target_range=tuple(config.target_range))


# --- evaluation -------------------------------------------------------------------------

def evaluate(model: Sequential, x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy, proba (n, n_classes) float32) in chunks of EVAL_CHUNK_ROWS;
    non-finite outputs count as wrong."""
    n = len(y)
    proba = np.empty((n, model.n_classes), dtype=np.float32)
    total_loss = 0.0
    for start in range(0, n, EVAL_CHUNK_ROWS):
        stop = min(start + EVAL_CHUNK_ROWS, n)
        loss, p = model.loss_and_proba(x[start:stop], y[start:stop])
        total_loss += loss * (stop - start)
        proba[start:stop] = p
    predicted = np.nan_to_num(proba, nan=-np.inf).argmax(axis=1)
    finite = np.isfinite(proba).all(axis=1)
    accuracy = float(np.mean((predicted == y) & finite)) if n else math.nan
    return total_loss / n, accuracy, proba


# --- the run ----------------------------------------------------------------------------

class _Curve:
    """Collects one row per evaluation."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, *row: float) -> None:
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        curve = pd.DataFrame(self.rows, columns=list(CURVE_COLUMNS))
        return curve.astype({"step": "int64", "samples_seen": "int64"})


_FEATURE_CACHE: dict[tuple[int, str], tuple[weakref.ref, np.ndarray]] = {}
_FEATURE_CACHE_SIZE = 6  # train/val/test in both dtypes


def _features(split: Split, dtype: type) -> np.ndarray:
    """split.features(dtype), cached while split.x lives: a study process trains many runs
    on the same data, and converting 50k images costs 0.1-0.7 s per run."""
    key = (id(split.x), np.dtype(dtype).name)
    cached = _FEATURE_CACHE.get(key)
    if cached is not None and cached[0]() is split.x:
        return cached[1]
    features = np.ascontiguousarray(split.features(dtype))
    _FEATURE_CACHE[key] = (weakref.ref(split.x), features)
    while len(_FEATURE_CACHE) > _FEATURE_CACHE_SIZE:
        del _FEATURE_CACHE[next(iter(_FEATURE_CACHE))]
    return features


def train(config: TrainConfig, data: Dataset) -> Run:
    """Train the config's network on `data.train`, evaluating on val and test.

    Returns a Run (see nnlab.run). Raises NNLabError before any training when the config
    does not fit the data; a diverging run is returned with status "diverged".
    Per-example steps (batch size 1) run with BLAS limited to one thread: at these sizes
    threads only add synchronisation (measured 10-20x slower with 2 threads on 2 busy
    cores)."""
    if not isinstance(config, TrainConfig):
        raise NNLabError(f"train: expected a TrainConfig, got {type(config).__name__}")
    single = config.batch_size == 1
    with threadpool_limits(limits=1) if single else nullcontext(), np.errstate(
            over="ignore", invalid="ignore", divide="ignore"):
        return _train(config, data)


def _train(config: TrainConfig, data: Dataset) -> Run:
    started = time.perf_counter()
    n_train = len(data.train)
    batch_size = resolve_batch_size(config, n_train)
    steps_per_epoch = n_train // batch_size
    n_steps = resolve_n_steps(config, steps_per_epoch)
    eval_steps = eval_schedule(config, n_steps)
    seeds = stream_seeds(config)
    rngs = stream_rngs(seeds)
    model = build_model(config, data, rngs)

    dtype = model.dtype
    x_val, y_val = _features(data.val, dtype), np.asarray(data.val.y)
    x_test, y_test = _features(data.test, dtype), np.asarray(data.test.y)
    reference = Split(data.train.x[:REFERENCE_ROWS], np.asarray(data.train.y[:REFERENCE_ROWS]))
    initial_loss, _ = model.loss_and_proba(reference.features(dtype), reference.y)
    loss_limit = config.diverge_factor * initial_loss if math.isfinite(initial_loss) else math.inf

    schedule = make_schedule(config, n_steps)
    fused = is_plain_sgd(config)
    if not fused:
        optimizer = make_optimizer(config, schedule, rngs["noise"])
        opt_state = optimizer.init(model.params)
    batches = _Batches(data.train, dtype, batch_size, rngs["order"])
    window_steps = max(1, math.ceil(WINDOW_SAMPLES / batch_size))

    curve = _Curve()
    status, note = "ok", ""
    loss_sum, loss_count = 0.0, 0  # since the last evaluation
    window_sum, window_count = 0.0, 0
    grad_norm = math.nan
    step = 0
    next_eval = iter(eval_steps)
    eval_at = next(next_eval)

    def record(at_step: int, train_loss: float) -> tuple[float, float, np.ndarray]:
        val_loss, val_acc, _ = evaluate(model, x_val, y_val)
        _, test_acc, test_proba = evaluate(model, x_test, y_test)
        curve.add(at_step, at_step / steps_per_epoch, at_step * batch_size, schedule(at_step),
                  train_loss, val_loss, val_acc, test_acc, grad_norm,
                  time.perf_counter() - started)
        return val_loss, val_acc, test_proba

    while True:
        if step == eval_at:
            train_loss = initial_loss if step == 0 else loss_sum / loss_count
            loss_sum, loss_count = 0.0, 0
            last = record(step, train_loss)
            if step == n_steps:
                break
            eval_at = next(next_eval)
        x, y = batches.next()
        if step + 1 == eval_at:
            grad_norm = optim.global_norm(model.loss_and_grads(x, y)[1]) if fused else math.nan
        if fused:
            loss = model.sgd_step(x, y, schedule(step))
        else:
            loss, grads = model.loss_and_grads(x, y)
            if step + 1 == eval_at:
                grad_norm = optim.global_norm(grads)
            updates, opt_state = optimizer.update(grads, opt_state, model.params, step)
            optim.apply_updates(model.params, updates)
        step += 1
        loss_sum += loss
        loss_count += 1
        window_sum += loss
        window_count += 1
        if not loss < math.inf:
            status, note = "diverged", f"train loss {loss} at step {step}"
        elif window_count == window_steps:
            if not window_sum / window_count <= loss_limit:
                status = "diverged"
                note = (f"mean train loss {window_sum / window_count:.4g} over steps "
                        f"{step - window_count + 1}..{step} > {config.diverge_factor:g} x "
                        f"the initial loss {initial_loss:.4g}")
            window_sum, window_count = 0.0, 0
        if status == "diverged":
            last = record(step, loss_sum / loss_count)
            break

    val_loss, val_acc, test_proba = last
    final = curve.rows[-1]
    metrics = {
        "val_acc": val_acc, "test_acc": final[CURVE_COLUMNS.index("test_acc")],
        "train_loss": final[CURVE_COLUMNS.index("train_loss")], "val_loss": val_loss,
        "n_steps": step, "seconds": time.perf_counter() - started,
    }
    return Run(config=config, status=status, curve=curve.frame(), metrics=metrics,
               test_proba=test_proba, test_labels=y_test, seeds=seeds, note=note)


class _Batches:
    """Minibatches in the order of the order stream: each epoch a fresh permutation of the
    training rows, cut into n_train // batch_size batches (the remainder is skipped).

    Full batch: the training features as is, never permuted. Otherwise rows are gathered
    into a reused buffer; uint8 pixels are gathered first and scaled after, exactly as
    Split.features does, so a step moves a quarter of the bytes."""

    def __init__(self, split: Split, dtype: type, batch_size: int,
                 rng: np.random.Generator) -> None:
        self.y, self.batch_size, self.rng = np.asarray(split.y), batch_size, rng
        self.n_batches = len(self.y) // batch_size
        self.position = self.n_batches  # start with a fresh permutation
        self.full = batch_size == len(self.y)
        if self.full:
            self.x_buffer, self.y_buffer = _features(split, dtype), self.y
            return
        self.pixels = split.x.dtype == np.uint8
        self.x = split.x if self.pixels else _features(split, dtype)
        self.scale = np.dtype(dtype).type(255.0)
        self.rows_buffer = np.empty((batch_size, split.x.shape[1]), dtype=self.x.dtype)
        self.x_buffer = np.empty((batch_size, split.x.shape[1]), dtype=dtype)
        self.y_buffer = np.empty(batch_size, dtype=self.y.dtype)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """x: (batch_size, n_features), y: (batch_size,), valid until the next call."""
        if self.full:
            return self.x_buffer, self.y_buffer
        if self.position == self.n_batches:
            self.order = self.rng.permutation(len(self.y))
            if self.batch_size == 1:
                self.order = self.order.tolist()  # Python ints index fastest
            self.position = 0
        k, self.position = self.position, self.position + 1
        if self.batch_size == 1:
            row = self.order[k]
            if not self.pixels:
                return self.x[row:row + 1], self.y[row:row + 1]
            np.divide(self.x[row], self.scale, out=self.x_buffer[0])
            return self.x_buffer, self.y[row:row + 1]
        rows = self.order[k * self.batch_size:(k + 1) * self.batch_size]
        if self.pixels:
            np.take(self.x, rows, axis=0, out=self.rows_buffer)
            np.divide(self.rows_buffer, self.scale, out=self.x_buffer)
        else:
            np.take(self.x, rows, axis=0, out=self.x_buffer)
        np.take(self.y, rows, out=self.y_buffer)
        return self.x_buffer, self.y_buffer
