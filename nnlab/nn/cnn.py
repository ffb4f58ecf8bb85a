"""The CNN: a Sequential of conv, pool, dense and dropout layers from a one-line spec.

A spec is dash-separated tokens, e.g. "conv32k5-pool2-conv64k5-pool2-dense128-dropout0.5":

    conv<filters>k<kernel>[s<stride>][p<padding>]   Conv2D, e.g. conv32k5, conv16k3s2p1
    pool<size>                                      MaxPool2D over size x size windows
    dense<units>                                    Dense (hidden)
    dropout<rate>                                   Dropout, rate in [0, 1)

The activation follows every conv and hidden dense layer; a Flatten comes before the first
dense layer, and the output Dense(n_classes) with the output/loss head closes the network.
A pool directly after a conv is applied before that conv's activation: every activation
here is non-decreasing, so max(f(x)) = f(max(x)) with the same gradient, and the
activation then runs on a quarter of the values.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from nnlab.errors import ConfigError, is_integer
from nnlab.nn.activations import check_activation, make_activation
from nnlab.nn.batch_threads import batch_parallel
from nnlab.nn.conv import Conv2D, MaxPool2D
from nnlab.nn.init import check_init
from nnlab.nn.layers import Dense, Dropout, Flatten, Layer
from nnlab.nn.model import Sequential

TOKENS = {
    "conv": re.compile(r"conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?"),
    "pool": re.compile(r"pool(\d+)"),
    "dense": re.compile(r"dense(\d+)"),
    "dropout": re.compile(r"dropout(\d*\.?\d+)"),
}
SPEC_FORM = ("dash-separated tokens conv<filters>k<kernel>[s<stride>][p<padding>], "
             "pool<size>, dense<units>, dropout<rate> (e.g. 'conv32k5-pool2-dense128-dropout0.5')")


def parse_layers(spec: object, field: str = "CNN.layers") -> list[tuple[str, tuple]]:
    """The spec's tokens as (kind, args) pairs: ("conv", (filters, kernel, stride,
    padding)), ("pool", (size,)), ("dense", (units,)), ("dropout", (rate,)).
    ConfigError naming `field` for anything else, or a conv/pool after a dense layer."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(field, SPEC_FORM, spec)
    parsed: list[tuple[str, tuple]] = []
    for token in spec.strip().split("-"):
        matches = [(kind, m) for kind, p in TOKENS.items() if (m := p.fullmatch(token))]
        if not matches:
            raise ConfigError(field, SPEC_FORM, token, shown=f"token {token!r} in {spec!r}")
        kind, match = matches[0]
        if kind == "conv":
            filters, kernel, stride, padding = match.groups()
            args: tuple = (int(filters), int(kernel), int(stride or 1), int(padding or 0))
        elif kind == "dropout":
            args = (float(match.group(1)),)
        else:
            args = (int(match.group(1)),)
        if kind == "dropout" and not args[0] < 1:
            raise ConfigError(field, "a dropout rate in [0, 1)", token)
        if kind != "dropout" and min(args[:3]) < 1:
            raise ConfigError(field, "positive sizes", token, shown=f"{token!r} in {spec!r}")
        if kind in ("conv", "pool") and any(k == "dense" for k, _ in parsed):
            raise ConfigError(field, "conv and pool layers before the first dense layer", token,
                              shown=f"{token!r} after one in {spec!r}")
        parsed.append((kind, args))
    return parsed


def check_fits(spec: object, image_shape: tuple[int, int, int],
               field: str = "CNN.layers") -> None:
    """ConfigError naming `field` unless `spec` parses and each of its conv and pool layers
    fits what the layers before it leave of an image_shape (channels, height, width)
    input: the checks a CNN's construction makes, without allocating its weights."""
    parsed = parse_layers(spec, field)
    image = "x".join(str(n) for n in image_shape)
    shape = tuple(image_shape)
    for token, (kind, args) in zip(str(spec).strip().split("-"), parsed, strict=True):
        if kind in ("conv", "pool"):  # the dense and dropout layers fit any input
            layer = Conv2D(*args) if kind == "conv" else MaxPool2D(*args)
            try:
                shape = layer.out_shape(shape)
            except ConfigError as err:
                raise ConfigError(field, err.expected, problem=f"{token!r} in {spec!r} on a "
                                  f"{image} input: {err.problem}") from None


def cnn_layers(spec: str, n_classes: int, activation: str, init: str,
               init_std: float | None = None, field: str = "CNN.layers") -> list[Layer]:
    """The layer list of `spec`, with activations, the Flatten and the output Dense."""
    layers: list[Layer] = []
    pending_activation = False  # a conv or dense layer's activation, deferred past pools

    def flush() -> None:
        nonlocal pending_activation
        if pending_activation:
            layers.append(make_activation(activation))
            pending_activation = False

    for kind, args in parse_layers(spec, field):
        if kind == "conv":
            flush()
            filters, kernel, stride, padding = args
            layers.append(Conv2D(filters, kernel, stride, padding, init=init, init_std=init_std))
            pending_activation = True
        elif kind == "pool":
            layers.append(MaxPool2D(*args))
        elif kind == "dropout":
            flush()
            layers.append(Dropout(*args))
        else:
            flush()
            if not any(isinstance(layer, Flatten) for layer in layers):
                layers.append(Flatten())
            layers.append(Dense(args[0], init=init, init_std=init_std))
            pending_activation = True
    flush()
    if not any(isinstance(layer, Flatten) for layer in layers):
        layers.append(Flatten())
    layers.append(Dense(n_classes, init=init, init_std=init_std))
    return layers


class CNN(Sequential):
    """A convolutional network from a layer spec (see the module docstring).

    Args:
        layers: the spec, e.g. "conv32k5-pool2-conv64k5-pool2-dense128-dropout0.5".
        in_shape: per-example image shape (channels, height, width); inputs arrive flat,
            (batch, channels * height * width).
        n_classes: size of the output layer.
        activation, init, init_std: for every conv and dense layer.
        output, loss, dtype, seed, target_range, dropout_rng: as for Sequential.
    A layer that does not fit its input (e.g. a kernel larger than what the convs and
    pools before it leave) raises ConfigError naming it, at construction.
    """

    def __init__(
        self,
        layers: str,
        in_shape: tuple[int, int, int],
        n_classes: int,
        activation: str = "relu",
        output: str = "softmax",
        loss: str = "cross_entropy",
        init: str = "he",
        init_std: float | None = None,
        dtype: object = np.float32,
        seed: int | np.random.Generator = 0,
        target_range: tuple[float, float] = (0.0, 1.0),
        dropout_rng: np.random.Generator | None = None,
    ) -> None:
        check_activation(activation, "CNN.activation")
        check_init(init, init_std, "CNN.init", "CNN.init_std")
        if not is_integer(n_classes) or n_classes < 1:
            raise ConfigError("CNN.n_classes", "a positive integer", n_classes)
        super().__init__(cnn_layers(layers, int(n_classes), activation, init, init_std),
                         in_shape, output, loss, dtype, seed, target_range, dropout_rng)
        self.spec = layers

    # every pass runs with batch-split threads and BLAS on one thread (batch_threads)

    def logits(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        with batch_parallel():
            return super().logits(x, train)

    def loss_and_grads(self, x: np.ndarray, y: npt.ArrayLike
                       ) -> tuple[float, list[dict[str, np.ndarray]]]:
        with batch_parallel():
            return super().loss_and_grads(x, y)

    def loss_and_input_grad(self, x: np.ndarray, y: npt.ArrayLike) -> tuple[float, np.ndarray]:
        with batch_parallel():
            return super().loss_and_input_grad(x, y)


def multiply_adds_per_example(model: Sequential) -> int:
    """Multiply-adds of one forward pass of one example through the conv and dense layers
    (a training step costs about three times this)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            out_h, out_w = layer.out_hw
            total += out_h * out_w * layer.params["W"].size
        elif isinstance(layer, Dense):
            total += layer.params["W"].size
    return total
