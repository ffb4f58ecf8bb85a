"""TrainConfig: every setting of one training run as plain, validated values.

Each field is checked when the config is made (and on `replace`/`from_dict`), so a bad
value fails before any work with "TrainConfig.<field>: expected ..., got ...": its own
constraint is declared once in CONSTRAINTS (nnlab.validation), then what relates fields
is checked in `__post_init__`. Checks that need the data (sizes against n_features and
n_classes, batch size against n_train) run at the start of `train`, with `check_memory`:
an MLP's layer sizes against the memory this machine has available.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from nnlab.entry_points import FORM_TEXT as ENTRY_POINT_FORM
from nnlab.entry_points import is_entry_point
from nnlab.errors import ConfigError
from nnlab.nn.activations import ACTIVATIONS
from nnlab.nn.cnn import check_fits
from nnlab.nn.init import check_init
from nnlab.nn.losses import LOSSES, OUTPUTS, check_head
from nnlab.validation import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    AnyOf,
    Constraint,
    InstanceOf,
    Integers,
    Interval,
    ListOf,
    OneOf,
    Optional,
    Satisfies,
    checked_fields,
)

MODELS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine", "inv_t", "capped_inv_t")
NOISES = ("none", "grad", "weight")
DTYPES = ("float32", "float64")
SEED_FIELDS = ("init_seed", "order_seed", "noise_seed", "dropout_seed")


def _fail(name: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"TrainConfig.{name}", expected, value)


MAX_STEPS = 10**12  # a step costs >= ~10 us: 4 months; keeps step counts exact in floats
MAX_EPOCHS = 10**6
MAX_EVALS = 10**5  # each evaluation passes over val and test
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adam": 2}
"""Arrays of the parameters' shape that each optimiser keeps (velocity; square average;
Adam's two moments)."""

OMITTED_AT_DEFAULT: dict[str, Any] = {"noise_scale_examples": 0}
"""Fields added after studies were committed, which `to_dict` leaves out at their default:
the digests of those studies and the keys of their trials hash `to_dict`, and stay as
they were."""
_KEPT = object()

_DECAY = Interval(0, 1, closed="left")  # a moving average's weight of the past
CONSTRAINTS: dict[str, Constraint] = {
    "model": AnyOf(OneOf(MODELS), Satisfies(is_entry_point,
                                            f"a model builder {ENTRY_POINT_FORM}")),
    "sizes": ListOf(POSITIVE_INT, min_length=2, note=" [n_features, hidden..., n_classes]"),
    "layers": InstanceOf(str, "a string (the CNN layer spec)"),
    "activation": OneOf(tuple(ACTIVATIONS)),
    "output": OneOf(OUTPUTS),
    "loss": OneOf(LOSSES),
    "optimizer": OneOf(OPTIMIZERS),
    "eta": POSITIVE,
    "momentum": _DECAY,
    "adam_beta1": _DECAY,
    "adam_beta2": _DECAY,
    "rms_decay": _DECAY,
    "eps": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "l1": NON_NEGATIVE,
    "clip_norm": Optional(POSITIVE),
    "schedule": OneOf(SCHEDULES),
    "decay_rate": Interval(0, 1, closed="right"),
    "decay_every": POSITIVE_INT,
    "eta_min": NON_NEGATIVE,
    "inv_t_decay": NON_NEGATIVE,
    "batch_size": Optional(POSITIVE_INT),
    "n_steps": Optional(Integers(1, MAX_STEPS)),
    "epochs": Optional(Interval(0, MAX_EPOCHS, closed="right")),
    "noise": OneOf(NOISES),
    "noise_eta": NON_NEGATIVE,
    "noise_gamma": NON_NEGATIVE,
    "n_evals": Integers(2, MAX_EVALS),
    "eval_steps": Optional(ListOf(NON_NEGATIVE_INT)),
    "noise_scale_examples": NON_NEGATIVE_INT,
    "diverge_factor": Interval(1, closed="neither"),
    "dtype": OneOf(DTYPES),
    "seed": NON_NEGATIVE_INT,
    **{name: Optional(NON_NEGATIVE_INT) for name in SEED_FIELDS},
}
"""Each field's own constraint (nnlab.validation), checked in this order when a config is
made; init, init_std and target_range depend on other fields and are checked with them
after, as are the layer spec against the model and sizes, eta_min against eta with the
cosine schedule, inv_t_decay > 0 with the capped_inv_t schedule, and n_steps against
epochs."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults: seed-000's network, sgd, batch 128, one epoch.

    Architecture: `model` is "mlp", "cnn" or a model builder "package.module:function"
    (see nnlab.train.build_model: it returns the layers of a network of the data's shape;
    it reads no `sizes`, and `layers`, any string, is there for it to read);
    `sizes` is the full MLP layer list [n_features, hidden..., n_classes];
    `layers` is the CNN's layer spec when model="cnn" (nnlab.nn.cnn; a CNN uses only
    sizes[0] and sizes[-1]), checked here against an image of sizes[0] values;
    `init` is one scheme for all layers or one per layer; `target_range` (lo, hi) sets the
    one-hot targets of the loss (0.01/0.99 for the classic MSE recipe).
    Length: `n_steps` or `epochs`, not both (neither: one epoch); `batch_size=None` is
    full-batch descent.
    Schedules: step -> eta * decay_rate ** (step // decay_every); cosine -> eta to eta_min
    over the run; inv_t -> eta / (1 + inv_t_decay * step); capped_inv_t ->
    min(eta, T / (step + 1)) with T = eta / inv_t_decay (> 0): eta, then T/N.
    Noise: "grad" adds annealed Gaussian noise (variance noise_eta / (1 + t)^noise_gamma) to
    the gradient before the optimiser; "weight" adds it to the weights after the step.
    Evaluation: at `eval_steps` if given, else at `n_evals` log-spaced steps (0 and the last
    step included). `noise_scale_examples` > 0 also records, at every evaluation, the
    gradient noise scale's two parts (the curve's grad_sq and noise_trace,
    nnlab.nn.noise_scale) from the first that many training examples: an MLP only, and a
    run that measures it does not train in lockstep. A run diverges when the loss is not
    finite or when the mean train loss over a window of steps exceeds `diverge_factor` x
    the initial loss.
    Seeds: `seed` derives the init, order, noise and dropout streams; the *_seed fields
    replace one stream (stream k of SeedSequence(value)), None = derived from `seed`.
    """

    model: str = "mlp"
    sizes: list[int] = field(default_factory=lambda: [784, 36, 16, 10])
    layers: str = ""
    activation: str = "sigmoid"
    output: str = "softmax"
    loss: str = "cross_entropy"
    target_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    init: str | list[str] = "xavier"
    init_std: float | None = None
    optimizer: str = "sgd"
    eta: float = 0.1
    momentum: float = 0.9
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    rms_decay: float = 0.9
    eps: float = 1e-8
    weight_decay: float = 0.0
    l1: float = 0.0
    clip_norm: float | None = None
    schedule: str = "constant"
    decay_rate: float = 0.1
    decay_every: int = 1000
    eta_min: float = 0.0
    inv_t_decay: float = 1e-3
    batch_size: int | None = 128
    n_steps: int | None = None
    epochs: float | None = None
    noise: str = "none"
    noise_eta: float = 0.01
    noise_gamma: float = 0.55
    n_evals: int = 16
    eval_steps: list[int] | None = None
    noise_scale_examples: int = 0
    diverge_factor: float = 10.0
    dtype: str = "float32"
    seed: int = 0
    init_seed: int | None = None
    order_seed: int | None = None
    noise_seed: int | None = None
    dropout_seed: int | None = None

    def __new__(cls, *args: Any, **values: Any) -> TrainConfig:
        """Refuse unknown field names in one line before the generated __init__ (whose
        TypeError names no valid field) sees them."""
        _check_names(values)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are stored once, here
        values = {name: getattr(self, name) for name in CONSTRAINTS}
        for name, value in checked_fields("TrainConfig", CONSTRAINTS, values).items():
            set_(self, name, value)
        # what relates fields
        if self.model == "cnn":
            self._check_cnn_layers()
        elif self.model == "mlp" and self.layers:  # an MLP is built from `sizes`
            raise _fail("layers", "'' with model='mlp' (a layer spec needs model='cnn')",
                        self.layers)
        target_range = list(self.target_range) if isinstance(
            self.target_range, list | tuple) else self.target_range
        check_head(self.output, self.loss, target_range, "TrainConfig")
        set_(self, "target_range", [float(v) for v in target_range])
        set_(self, "init", self._checked_init())
        if self.schedule == "cosine" and self.eta_min > self.eta:
            raise _fail("eta_min", f"a number <= eta ({self.eta})", self.eta_min)
        if self.schedule == "capped_inv_t" and not self.inv_t_decay:
            raise _fail("inv_t_decay", "a positive number with schedule='capped_inv_t' "
                        "(eta / inv_t_decay is the time T of its rate T / (step + 1))",
                        self.inv_t_decay)
        self._check_length()
        if self.noise_scale_examples == 1 or (self.noise_scale_examples
                                              and self.model != "mlp"):
            raise _fail("noise_scale_examples", "0 (off), or at least 2 training examples "
                        "with model='mlp' (the gradient noise scale is measured for the "
                        f"built-in MLP only; model={self.model!r})", self.noise_scale_examples)
        if self.eval_steps is not None:
            set_(self, "eval_steps", sorted(set(self.eval_steps)))

    def _check_cnn_layers(self) -> None:
        """The spec must parse and fit the largest square image of sizes[0] values (1x28x28
        for 784). Every image of that many values has a side no longer than this square's,
        and a conv or pool that does not fit a side fits no shorter one, so no data the
        config can train on is turned away; train() checks the data's own image shape."""
        if not self.layers:
            raise _fail("layers", "a CNN layer spec such as 'conv32k5-pool2-dense128' "
                        "when model='cnn'", self.layers)
        side = math.isqrt(self.sizes[0])
        check_fits(self.layers, (1, side, side), "TrainConfig.layers")

    def _checked_init(self) -> str | list[str]:
        n_layers = len(self.sizes) - 1
        if isinstance(self.init, list | tuple):
            if self.model != "mlp" or len(self.init) != n_layers:
                raise _fail("init", f"one scheme or a list of {n_layers} (one per layer)",
                            self.init)
            for scheme in self.init:
                check_init(scheme, None, "TrainConfig.init", "TrainConfig.init_std")
            if self.init_std is not None:
                if "normal" not in self.init:
                    raise _fail("init_std", "null unless a layer's init is 'normal'",
                                self.init_std)
                check_init("normal", self.init_std, "TrainConfig.init", "TrainConfig.init_std")
            return list(self.init)
        check_init(self.init, self.init_std, "TrainConfig.init", "TrainConfig.init_std")
        return self.init

    def _check_length(self) -> None:
        """n_steps or epochs, not both; neither is one epoch."""
        if self.n_steps is not None and self.epochs is not None:
            raise ConfigError("TrainConfig.n_steps", "n_steps or epochs, not both",
                              (self.n_steps, self.epochs),
                              shown=f"n_steps={self.n_steps!r}, epochs={self.epochs!r}")
        if self.n_steps is None and self.epochs is None:
            object.__setattr__(self, "epochs", 1.0)

    # --- plain-value round trips -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-able plain values (lists, not tuples), but those of
        OMITTED_AT_DEFAULT at their default."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)
                if OMITTED_AT_DEFAULT.get(f.name, _KEPT) != getattr(self, f.name)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A validated config from a mapping of field names; missing fields keep their
        defaults (as in `replace`), unknown names are an error."""
        if not isinstance(values, dict):
            raise ConfigError("TrainConfig", "a mapping of fields", values)
        return cls().replace(**values)

    def replace(self, **overrides: Any) -> TrainConfig:
        """A validated copy with `overrides` applied (unknown names are an error).

        Setting one of n_steps / epochs clears the other unless both are given. Unknown
        names reach the constructor, whose __new__ refuses them."""
        overrides = dict(overrides)
        if "n_steps" in overrides and "epochs" not in overrides and overrides["n_steps"]:
            overrides["epochs"] = None
        elif "epochs" in overrides and "n_steps" not in overrides and overrides["epochs"]:
            overrides["n_steps"] = None
        return dataclasses.replace(self, **overrides)


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TrainConfig))


def _check_names(values: dict[str, Any]) -> None:
    """ConfigError naming the first unknown field, its close matches and the known ones."""
    known = field_names()
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, known)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ConfigError(f"TrainConfig.{name}", f"one of {', '.join(known)}",
                              problem=f"unknown field{hint}")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


# --- memory -----------------------------------------------------------------------------


def mlp_bytes(config: TrainConfig, batch_size: int) -> int:
    """A lower bound of the bytes an MLP run of `config` holds at once: its weights and
    biases, their gradients and the optimiser's state (OPTIMIZER_STATE copies), and the
    activations of one batch of `batch_size` examples through every layer, forward and
    back; each value of the config's dtype."""
    sizes = config.sizes
    n_params = sum(n_in * n_out + n_out for n_in, n_out in itertools.pairwise(sizes))
    itemsize = 4 if config.dtype == "float32" else 8
    copies = 2 + OPTIMIZER_STATE[config.optimizer]
    return itemsize * (copies * n_params + 2 * batch_size * sum(sizes))


def available_memory() -> int | None:
    """Bytes of memory available to a new process: MemAvailable of /proc/meminfo (Linux),
    else the physical memory (os.sysconf), else None (unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # given in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(config: TrainConfig, batch_size: int) -> None:
    """ConfigError naming TrainConfig.sizes and the bytes needed when an MLP run of
    `config` (`mlp_bytes`) needs more memory than this machine has available; other
    models are not checked."""
    if config.model != "mlp":
        return
    needed, available = mlp_bytes(config, batch_size), available_memory()
    if available is not None and needed > available:
        raise ConfigError(
            "TrainConfig.sizes", f"layer sizes that fit in the {_gib(available)} of memory "
            "available here",
            problem=f"{config.sizes} need at least {needed:,} bytes ({_gib(needed)}: weights, "
                    "gradients, optimiser state and one batch's activations, "
                    f"{config.dtype})")


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"
