"""Named TrainConfigs: the five seed projects' recipes and the fastest route to 98%.

Each description says what the recipe fixes and how the values it leaves open (eta, batch
size, hidden sizes, length) were chosen: on the validation split, never on test
(benchmarks/choose_presets.py holds the searches and their val numbers).
"""

from __future__ import annotations

from typing import NamedTuple

from nnlab.errors import ConfigError
from nnlab.train_config import TrainConfig


class Preset(NamedTuple):
    name: str
    description: str
    config: TrainConfig


def _preset(name: str, description: str, **fields: object) -> Preset:
    return Preset(name, description, TrainConfig().replace(**fields))


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in [
        _preset(
            "seed-000",
            "784-36-16-10 sigmoid, softmax + cross-entropy, plain SGD, 2000 steps of batch "
            "5000 (the recipe); Xavier init; eta 3 chosen on val from 0.3/1/3/10 "
            "(val_acc .934/.963/.967/.956).",
            sizes=[784, 36, 16, 10], activation="sigmoid", output="softmax",
            loss="cross_entropy", init="xavier", optimizer="sgd", eta=3.0,
            batch_size=5000, n_steps=2000,
        ),
        _preset(
            "seed-001",
            "784-16-16-10, relu, relu, sigmoid outputs, MSE, He init for the relu layers and "
            "Xavier for the output, 100 epochs (the recipe); plain SGD, batch 128 and eta 0.3 "
            "chosen on val from batch 32/128 x eta 0.1/0.3/1/3 (val_acc .959/.954/.942/.419, "
            ".953/.960/.954/.929).",
            sizes=[784, 16, 16, 10], activation="relu", output="sigmoid", loss="mse",
            init=["he", "he", "xavier"], optimizer="sgd", eta=0.3, batch_size=128, epochs=100,
        ),
        _preset(
            "seed-002",
            "784-100-10 sigmoid (hidden and outputs), N(0, 1/sqrt(n_in)) init, MSE on "
            "0.01/0.99 targets, one epoch of per-sample SGD with eta 0.3 (all the recipe's).",
            sizes=[784, 100, 10], activation="sigmoid", output="sigmoid", loss="mse",
            target_range=[0.01, 0.99], init="lecun", optimizer="sgd", eta=0.3,
            batch_size=1, epochs=1,
        ),
        _preset(
            "seed-003",
            "Two layers, ELU hidden, softmax + cross-entropy, full-batch gradient descent (the "
            "recipe); He init, 500 steps; hidden size 32 and eta 0.3 chosen on val from "
            "10/32 x 0.3/1/3 (val_acc .925/.876/div, .938/.936/div).",
            sizes=[784, 32, 10], activation="elu", output="softmax", loss="cross_entropy",
            init="he", optimizer="sgd", eta=0.3, batch_size=None, n_steps=500,
        ),
        _preset(
            "seed-004",
            "784-10-10 relu, softmax + cross-entropy, 1000 iterations of full-batch gradient "
            "descent (the recipe); He init; eta 0.3 chosen on val from 0.1/0.3/1/3 "
            "(val_acc .920/.932/.249/.106).",
            sizes=[784, 10, 10], activation="relu", output="softmax", loss="cross_entropy",
            init="he", optimizer="sgd", eta=0.3, batch_size=None, n_steps=1000,
        ),
        _preset(
            "fast98",
            "The cheapest MLP recipe found with val_acc >= 98.4%: 784-256-256-10 relu, He "
            "init, Adam eta 3e-3 with cosine decay, batch 128, 5 epochs, label smoothing 0.1 "
            "(targets 0.01/0.91); val_acc .984 (19 candidates on val, "
            "benchmarks/choose_presets.py).",
            sizes=[784, 256, 256, 10], activation="relu", output="softmax",
            loss="cross_entropy", target_range=[0.01, 0.91], init="he", optimizer="adam",
            eta=3e-3, schedule="cosine", batch_size=128, epochs=5, n_evals=2,
        ),
        _preset(
            "cnn",
            "A numpy CNN for >= 99.2% test: conv32 5x5 - pool - conv64 5x5 - pool - dense128 - "
            "dropout 0.5, relu, He init, Adam with cosine decay over 8 epochs of batch 128; "
            "eta and epochs chosen on val (the cheapest of 8 candidates with val_acc >= "
            "99.25%: 99.32%).",
            model="cnn", layers="conv32k5-pool2-conv64k5-pool2-dense128-dropout0.5",
            activation="relu", init="he", optimizer="adam", eta=2e-3, schedule="cosine",
            batch_size=128, epochs=8, n_evals=2,
        ),
    ]
}


def get_preset(name: str) -> TrainConfig:
    """The TrainConfig of preset `name`; ConfigError listing the presets if unknown."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError("preset", f"one of {', '.join(PRESETS)}", name)
    return PRESETS[name].config
