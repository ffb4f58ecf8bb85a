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
from collections.abc import Callable, Generator
from contextlib import nullcontext
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from nnlab import optim
from nnlab.datasets import Dataset, Split, scale_pixels
from nnlab.entry_points import call_entry_point
from nnlab.errors import ConfigError, NNLabError
from nnlab.nn.layers import Layer
from nnlab.nn.losses import Head
from nnlab.nn.model import MLP, Sequential
from nnlab.nn.noise_scale import gradient_noise
from nnlab.presets import PRESETS, Preset, get_preset
from nnlab.run import CURVE_COLUMNS, Run, curve_columns
from nnlab.train_config import MODELS, TrainConfig, check_memory

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
        raise ConfigError("TrainConfig.batch_size", f"at most the {n_train} training examples "
                          "(or null for full batch)", config.batch_size)
    return config.batch_size


def resolve_n_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    if config.n_steps is not None:
        return config.n_steps
    assert config.epochs is not None  # TrainConfig sets epochs when n_steps is None
    return max(1, round(config.epochs * steps_per_epoch))


def eval_schedule(config: TrainConfig, n_steps: int) -> list[int]:
    """Steps at which the model is evaluated (before that step runs); always 0 and n_steps.

    Default: n_evals points, log-spaced in 1..n_steps, plus step 0."""
    if config.eval_steps is not None:
        late = [s for s in config.eval_steps if s > n_steps]
        if late:
            raise ConfigError("TrainConfig.eval_steps", f"steps <= n_steps ({n_steps})", late)
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
    if config.schedule == "capped_inv_t":
        return optim.CappedInverseTime(config.eta, config.inv_t_decay)
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


def is_elementwise(config: TrainConfig) -> bool:
    """True when the optimiser chain treats every parameter entry alike and on its own (no
    weight decay or L1, which spare biases; no clipping by the global norm; no noise,
    drawn array by array): it may then run on a model's flat buffers."""
    return (not config.weight_decay and not config.l1 and config.clip_norm is None
            and config.noise == "none")


def is_plain_sgd(config: TrainConfig) -> bool:
    """True when the update is just -eta(step) * gradient (the model's fused step applies)."""
    return config.model == "mlp" and config.optimizer == "sgd" and is_elementwise(config)


def fit_to_data(config: TrainConfig, data: Dataset) -> tuple[int, int, list[int]]:
    """(batch_size, n_steps, eval_steps) of the config on `data`; ConfigError naming the
    field when the config does not fit the data (what `train` checks before any work, and
    a study before it creates any trial). A model builder's network is built once to see
    that it takes the data's examples and gives one output per class."""
    if config.model in MODELS:
        if config.sizes[0] != data.n_features or config.sizes[-1] != data.n_classes:
            raise ConfigError(
                "TrainConfig.sizes", f"[{data.n_features}, ..., {data.n_classes}] to match "
                f"the data ({data.n_features} features, {data.n_classes} classes)", config.sizes)
    else:
        build_model(config, data, stream_rngs(stream_seeds(config)))
    batch_size = resolve_batch_size(config, len(data.train))
    if config.noise_scale_examples > len(data.train):
        raise ConfigError("TrainConfig.noise_scale_examples", f"at most the {len(data.train)} "
                          "training examples", config.noise_scale_examples)
    check_memory(config, batch_size)
    n_steps = resolve_n_steps(config, len(data.train) // batch_size)
    return batch_size, n_steps, eval_schedule(config, n_steps)


def build_model(config: TrainConfig, data: Dataset, rngs: dict[str, np.random.Generator]
                ) -> Sequential:
    """The config's network for `data`, initialised from the init stream (dropout from the
    dropout stream).

    A model builder, `model = "package.module:function"`, is called as
    function(image_shape, n_classes, config) with the data's (channels, height, width) and
    number of classes and the run's TrainConfig, and returns a list of nnlab layers
    (nnlab.nn: Dense, Conv2D, MaxPool2D, Flatten, Dropout, activations); they become a
    Sequential with the config's output, loss, dtype and streams, the network an MLP and
    a CNN are. NNLabError naming TrainConfig.model when it does not import, returns
    anything else, or its network does not take the data's examples or gives other than
    one output per class."""
    common: dict[str, Any] = {
        "output": config.output, "loss": config.loss, "dtype": config.dtype,
        "seed": rngs["init"], "target_range": tuple(config.target_range)}
    if config.model == "mlp":
        return MLP(config.sizes, activation=config.activation, init=config.init,
                   init_std=config.init_std, **common)
    if config.model == "cnn":
        from nnlab.nn.cnn import CNN

        assert isinstance(config.init, str)  # TrainConfig: a list of inits is an MLP's
        return CNN(config.layers, data.image_shape, data.n_classes,
                   activation=config.activation, init=config.init, init_std=config.init_std,
                   dropout_rng=rngs["dropout"], **common)
    where = "TrainConfig.model"
    layers = call_entry_point(config.model, where, tuple(data.image_shape), data.n_classes,
                              config)
    if not isinstance(layers, list) or not layers or not all(
            isinstance(layer, Layer) for layer in layers):
        raise ConfigError(where, "a non-empty list of nnlab layers (nnlab.nn.Layer instances)",
                          problem=f"{config.model} returned {_describe(layers)}")
    try:
        model = Sequential(layers, data.image_shape, dropout_rng=rngs["dropout"], **common)
    except NNLabError as err:
        raise err.within(f"{where}: {config.model}'s network on the data's "
                         f"{'x'.join(map(str, data.image_shape))} examples") from err
    if model.n_classes != data.n_classes:
        raise ConfigError(where, f"{data.n_classes}, one per class of the data",
                          problem=f"{config.model}'s network gives {model.n_classes} outputs "
                          "per example")
    return model


def _describe(value: object) -> str:
    if isinstance(value, list):
        kinds = sorted({type(v).__name__ for v in value})
        return f"a list of {', '.join(kinds) or 'nothing'}"
    return type(value).__name__


# --- evaluation -------------------------------------------------------------------------

class Evaluable(Protocol):
    """What `evaluate` reads of a model: a Sequential, or a run of a lockstep group."""

    n_classes: int
    head: Head

    def loss_and_proba(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def evaluate(model: Evaluable, x: np.ndarray, y: np.ndarray, with_loss: bool = True
             ) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy, proba (n, n_classes) float32) in chunks of EVAL_CHUNK_ROWS;
    non-finite outputs count as wrong. Sigmoid outputs are normalised to sum to 1.
    with_loss False: the outputs without the loss (`predict_proba`, the outputs of
    `loss_and_proba` bit for bit), the loss NaN."""
    n = len(y)
    proba = np.empty((n, model.n_classes), dtype=np.float32)
    total_loss = 0.0 if with_loss else math.nan
    for start in range(0, n, EVAL_CHUNK_ROWS):
        stop = min(start + EVAL_CHUNK_ROWS, n)
        if with_loss:
            loss, p = model.loss_and_proba(x[start:stop], y[start:stop])
            total_loss += loss * (stop - start)
        else:
            p = model.predict_proba(x[start:stop])
        if model.head.output == "sigmoid":
            p = p / p.sum(axis=1, keepdims=True)
        proba[start:stop] = p
    predicted = np.nan_to_num(proba, nan=-np.inf).argmax(axis=1)
    finite = np.isfinite(proba).all(axis=1)
    accuracy = float(np.mean((predicted == y) & finite)) if n else math.nan
    return total_loss / n, accuracy, proba


# --- the run ----------------------------------------------------------------------------

class _Curve:
    """Collects one row per evaluation, of `columns`."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.rows: list[tuple] = []

    def add(self, *row: float) -> None:
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        curve = pd.DataFrame(self.rows, columns=list(self.columns))
        return curve.astype({"step": "int64", "samples_seen": "int64"})


_FEATURE_CACHE: dict[tuple[int, str, int | None], tuple[weakref.ref, np.ndarray]] = {}
_FEATURE_CACHE_SIZE = 8  # train/val/test and the reference rows, in both dtypes


def _features(split: Split, dtype: type, rows: int | None = None) -> np.ndarray:
    """split.features(dtype) of its first `rows` rows (default all), cached while split.x
    lives: a study process trains many runs on the same data, and converting 50k images
    costs 0.1-0.7 s per run. Every run gets the same array (a lockstep group evaluates
    them once for all its runs)."""
    key = (id(split.x), np.dtype(dtype).name, rows)
    cached = _FEATURE_CACHE.get(key)
    if cached is not None and cached[0]() is split.x:
        return cached[1]
    features = np.ascontiguousarray(Split(split.x[:rows], split.y[:rows]).features(dtype))
    _FEATURE_CACHE[key] = (weakref.ref(split.x), features)
    while len(_FEATURE_CACHE) > _FEATURE_CACHE_SIZE:
        del _FEATURE_CACHE[next(iter(_FEATURE_CACHE))]
    return features


OnEval = Callable[[dict[str, float], bool], bool]


def train(config: TrainConfig, data: Dataset, on_eval: OnEval | None = None) -> Run:
    """Train the config's network on `data.train`, evaluating on val and test.

    Returns a Run (see nnlab.run). Raises ConfigError before any training when the config
    does not fit the data; a diverging run is returned with status "diverged".
    `on_eval(row, last)` is called after each evaluation with its curve row ({column:
    value}, `curve_columns`) and whether it is the run's last; returning False stops the run
    there, with status "stopped" (a study's pruner uses it).
    Per-example steps (batch size 1) run with BLAS limited to one thread: at these sizes
    threads only add synchronisation (measured 10-20x slower with 2 threads on 2 busy
    cores)."""
    if not isinstance(config, TrainConfig):
        raise ConfigError("config", "a TrainConfig", config, shown=type(config).__name__)
    single = config.batch_size == 1
    with threadpool_limits(limits=1) if single else nullcontext(), np.errstate(
            over="ignore", invalid="ignore", divide="ignore"):
        return _train(config, data, on_eval)


class RunStart(NamedTuple):
    """A run as it stands before its first step (see `start_run`)."""

    config: TrainConfig
    batch_size: int
    n_steps: int
    eval_steps: list[int]
    seeds: dict[str, int]
    rngs: dict[str, np.random.Generator]
    model: Sequential
    schedule: optim.Schedule


Segment = tuple[int, int, bool]
"""Steps first..stop-1 to run, and whether the norm of the last one's gradient is wanted."""
Stepped = tuple[list[float], float]
"""What running a Segment gives: the steps' losses and that norm (NaN if not wanted)."""


def start_run(config: TrainConfig, data: Dataset) -> RunStart:
    """Check `config` against `data` and set up its run: sizes, seeds and streams, the
    initialised model, the schedule."""
    batch_size, n_steps, eval_steps = fit_to_data(config, data)
    seeds = stream_seeds(config)
    rngs = stream_rngs(seeds)
    model = build_model(config, data, rngs)
    return RunStart(config, batch_size, n_steps, eval_steps, seeds, rngs, model,
                    make_schedule(config, n_steps))


def own_stepper(run: RunStart, data: Dataset) -> Stepper:
    """The Stepper of `run` training alone: its own batches of data.train, drawn from its
    order stream."""
    return Stepper(run.config, run.model, run.schedule,
                   _Batches(data.train, run.model.dtype, run.batch_size, run.rngs["order"]),
                   run.rngs["noise"])


def _train(config: TrainConfig, data: Dataset, on_eval: OnEval | None) -> Run:
    started = time.perf_counter()
    run = start_run(config, data)
    return drive(run_loop(run, data, started, on_eval), own_stepper(run, data).run)


def drive(loop: Generator[Segment, Stepped, Run], step: Callable[[int, int, bool], Stepped]
          ) -> Run:
    """Run `loop` (see `run_loop`) to its end, running each segment it asks for with `step`."""
    segment = next(loop)
    while True:
        try:
            segment = loop.send(step(*segment))
        except StopIteration as end:
            return end.value


def run_loop(run: RunStart, data: Dataset, started: float, on_eval: OnEval | None = None,
             evaluated: Evaluable | None = None) -> Generator[Segment, Stepped, Run]:
    """The loop of one run around its steps: yields each Segment of steps to run and is sent
    what running it gives (as `Stepper.run` returns it); evaluates, calls `on_eval` (see
    `train`), keeps the curve, applies the divergence rule and returns the Run. Its times
    count from `started`. `evaluated` stands in for run.model in the evaluations and the
    initial loss (the same outputs; by default run.model)."""
    config, batch_size, n_steps, eval_steps, seeds, _, model, schedule = run
    evaluated = model if evaluated is None else evaluated
    steps_per_epoch = len(data.train) // batch_size
    dtype = model.dtype
    x_val, y_val = _features(data.val, dtype), np.asarray(data.val.y)
    x_test, y_test = _features(data.test, dtype), np.asarray(data.test.y)
    # its loss on the first training rows, as it evaluates (a group of runs alike: one pass)
    initial_loss, _ = evaluated.loss_and_proba(_features(data.train, dtype, REFERENCE_ROWS),
                                               np.asarray(data.train.y[:REFERENCE_ROWS]))
    loss_limit = config.diverge_factor * initial_loss if math.isfinite(initial_loss) else math.inf
    window_steps = max(1, math.ceil(WINDOW_SAMPLES / batch_size))

    curve = _Curve(curve_columns(config))
    noise_sample = config.noise_scale_examples  # the first training examples (0: none)
    # (x (n, d), y (n,)) of those examples; None spares converting the training split
    noise_data = ((_features(data.train, dtype, noise_sample),
                   np.asarray(data.train.y[:noise_sample])) if noise_sample else None)
    status, note = "ok", ""
    loss_sum, loss_count = 0.0, 0  # since the last evaluation
    window_sum, window_count = 0.0, 0
    grad_norm = math.nan
    step = 0
    next_eval = iter(eval_steps)
    eval_at = next(next_eval)

    def record(at_step: int, train_loss: float, final: bool
               ) -> tuple[float, float, np.ndarray, bool]:
        """Evaluate and add a curve row; the last item: whether `on_eval` stops the run."""
        val_loss, val_acc, _ = evaluate(evaluated, x_val, y_val)
        _, test_acc, test_proba = evaluate(evaluated, x_test, y_test, with_loss=False)
        noise = gradient_noise(model, *noise_data, len(data.train))[:2] \
            if noise_data is not None else ()
        curve.add(at_step, at_step / steps_per_epoch, at_step * batch_size, schedule(at_step),
                  train_loss, val_loss, val_acc, test_acc, grad_norm,
                  time.perf_counter() - started, *noise)
        stop = on_eval is not None and not on_eval(
            dict(zip(curve.columns, curve.rows[-1], strict=True)), final) and not final
        return val_loss, val_acc, test_proba, stop

    while True:
        if step == eval_at:
            train_loss = initial_loss if step == 0 else loss_sum / loss_count
            loss_sum, loss_count = 0.0, 0
            last = record(step, train_loss, final=step == n_steps)
            if last[3]:
                status, note = "stopped", f"stopped by on_eval at step {step}"
            if step == n_steps or status == "stopped":
                break
            eval_at = next(next_eval)
        # a segment ends at the next evaluation or the end of the divergence window
        stop = min(eval_at, (step // window_steps + 1) * window_steps)
        losses, norm = yield step, stop, stop == eval_at
        grad_norm = norm if stop == eval_at else grad_norm
        step += len(losses)
        total = sum(losses)
        loss_sum, loss_count = loss_sum + total, loss_count + len(losses)
        window_sum, window_count = window_sum + total, window_count + len(losses)
        if not total < math.inf:
            i = next(i for i, loss in enumerate(losses) if not loss < math.inf)
            status = "diverged"
            note = f"train loss {losses[i]} at step {step - len(losses) + i + 1}"
        elif step % window_steps == 0:
            if not window_sum / window_count <= loss_limit:
                status = "diverged"
                note = (f"mean train loss {window_sum / window_count:.4g} over steps "
                        f"{step - window_count + 1}..{step} > {config.diverge_factor:g} x "
                        f"the initial loss {initial_loss:.4g}")
            window_sum, window_count = 0.0, 0
        if status == "diverged":
            last = record(step, loss_sum / loss_count, final=True)
            break

    val_loss, val_acc, test_proba, _ = last
    final = curve.rows[-1]
    metrics = {
        "val_acc": val_acc, "test_acc": final[CURVE_COLUMNS.index("test_acc")],
        "train_loss": final[CURVE_COLUMNS.index("train_loss")], "val_loss": val_loss,
        "n_steps": step, "seconds": time.perf_counter() - started,
    }
    return Run(config=config, status=status, curve=curve.frame(), metrics=metrics,
               test_proba=test_proba, test_labels=y_test, seeds=seeds, note=note, model=model)


class Stepper:
    """Runs training steps one of three ways: plain SGD at batch size 1 as the model's fused
    per-example loop (`sgd_steps`), plain SGD at larger batches as its fused in-place step,
    anything else as loss_and_grads + the optimiser chain + apply_updates."""

    def __init__(self, config: TrainConfig, model: Sequential, schedule: optim.Schedule,
                 batches: _Batches, noise_rng: np.random.Generator) -> None:
        self.model, self.schedule, self.batches = model, schedule, batches
        self.fused = is_plain_sgd(config)
        self.examples = self.fused and batches.batch_size == 1
        if self.fused:
            assert isinstance(model, MLP)  # is_plain_sgd: model="mlp"
            self.mlp = model
        else:
            self.optimizer = make_optimizer(config, schedule, noise_rng)
            flat = model.flat_buffers() if is_elementwise(config) else None
            # the same updates either way; on the flat buffers in a few numpy calls (the
            # model's grads are the buffers loss_and_grads fills)
            self.params, self.grads = ([{"all": flat[0]}], [{"all": flat[1]}]) if flat else (
                model.params, model.grads)
            self.state = self.optimizer.init(self.params)

    def run(self, first: int, stop: int, grad_norm_of_last: bool) -> tuple[list[float], float]:
        """Steps first..stop-1 (ending early after a non-finite loss, except on the
        per-example path); returns their losses and, if asked, the global norm of the last
        step's raw gradient (else NaN)."""
        if self.examples:
            return self._run_examples(first, stop, grad_norm_of_last)
        losses, norm = [], math.nan
        for step in range(first, stop):
            x, y = self.batches.next()
            if self.fused:
                if grad_norm_of_last and step == stop - 1:
                    norm = optim.global_norm(self.model.loss_and_grads(x, y)[1])
                loss = self.mlp.sgd_step(x, y, self.schedule(step))
            else:
                loss, grads = self.model.loss_and_grads(x, y)
                if grad_norm_of_last and step == stop - 1:
                    norm = optim.global_norm(grads)
                self.update(step)
            losses.append(loss)
            if not loss < math.inf:
                break
        return losses, norm

    def update(self, step: int) -> None:
        """Not fused: update the parameters by the optimiser chain from the model's grads."""
        updates, self.state = self.optimizer.update(self.grads, self.state, self.params, step)
        optim.apply_updates(self.params, updates)

    def _run_examples(self, first: int, stop: int, grad_norm_of_last: bool
                      ) -> tuple[list[float], float]:
        x, y = self.batches.rows(stop - first)
        etas: float | np.ndarray
        if isinstance(self.schedule, optim.Constant):
            etas = self.schedule.eta
        else:
            etas = np.array([self.schedule(step) for step in range(first, stop)])
        if not grad_norm_of_last:
            return self.mlp.sgd_steps(x, y, etas).tolist(), math.nan
        # the last step separately, to see its gradient (sgd_steps == repeated sgd_step)
        last_eta = self.schedule(stop - 1)
        losses = self.mlp.sgd_steps(x[:-1], y[:-1], np.broadcast_to(etas, len(x))[:-1]
                                    ).tolist() if len(x) > 1 else []
        norm = optim.global_norm(self.mlp.loss_and_grads(x[-1:], y[-1:])[1])
        losses.append(self.mlp.sgd_step(x[-1:], y[-1:], last_eta))
        return losses, norm


class _Batches:
    """Minibatches in the order of the order stream: each epoch a fresh permutation of the
    training rows, cut into n_train // batch_size batches (the remainder is skipped).

    Full batch: the training features as is, never permuted. Otherwise the rows are
    gathered into reused buffers. uint8 pixels are gathered as bytes and scaled there
    (`scale_pixels`, the same bits as the full features), so a run never holds a float
    copy of the training set (157 MB for MNIST in float32); as fast as gathering float
    rows (batch 5000 on an EPYC: 2.8 against 2.6 ms, the scaling taking 2.0)."""

    def __init__(self, split: Split, dtype: type, batch_size: int,
                 rng: np.random.Generator) -> None:
        self.dtype, self.batch_size, self.rng = dtype, batch_size, rng
        self.y = np.asarray(split.y)
        self.n_batches = len(self.y) // batch_size
        self.position = self.n_batches  # start with a fresh permutation
        self.full = batch_size == len(self.y)
        self.pixels = not self.full and split.x.dtype == np.uint8
        self.x = np.ascontiguousarray(split.x) if self.pixels else _features(split, dtype)
        self._allocate(0 if self.full else batch_size)

    def _allocate(self, n_rows: int) -> None:
        self.x_buffer: np.ndarray = np.empty((n_rows, self.x.shape[1]), dtype=self.dtype)
        self.pixel_buffer = np.empty((n_rows if self.pixels else 0, self.x.shape[1]),
                                     dtype=np.uint8)
        self.y_buffer = np.empty(n_rows, dtype=self.y.dtype)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """x: (batch_size, n_features), y: (batch_size,), valid until the next call."""
        if self.full:
            return self.x, self.y
        if self.position == self.n_batches:
            self._shuffle()
        k, self.position = self.position, self.position + 1
        return self._gather(self.order[k * self.batch_size:(k + 1) * self.batch_size])

    def rows(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next n batches of one example as x: (n, n_features), y: (n,), crossing into
        the next epoch's permutation when needed; valid until the next call."""
        parts = []
        while n:
            if self.position == self.n_batches:
                self._shuffle()
            take = min(n, self.n_batches - self.position)
            parts.append(self.order[self.position:self.position + take])
            self.position += take
            n -= take
        return self._gather(parts[0] if len(parts) == 1 else np.concatenate(parts))

    def _shuffle(self) -> None:
        self.order = self.rng.permutation(len(self.y))
        self.position = 0

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(rows)
        if n > len(self.y_buffer):
            self._allocate(n)
        x_out, y_out = self.x_buffer[:n], self.y_buffer[:n]
        # mode="clip": the rows are valid, and it skips take's buffered bounds-checked copy
        if self.pixels:
            scale_pixels(np.take(self.x, rows, axis=0, out=self.pixel_buffer[:n], mode="clip"),
                        self.dtype, out=x_out)
        else:
            np.take(self.x, rows, axis=0, out=x_out, mode="clip")
        np.take(self.y, rows, out=y_out, mode="clip")
        return x_out, y_out
