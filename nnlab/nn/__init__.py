"""The numpy network core: layers, activations, outputs and losses, models."""

from nnlab.nn.activations import ACTIVATIONS, Activation, make_activation
from nnlab.nn.init import INITS, init_std, init_weights
from nnlab.nn.layers import Dense, Dropout, Flatten, Layer
from nnlab.nn.losses import LOSSES, OUTPUTS, Head
from nnlab.nn.model import MLP, Sequential

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "LOSSES",
    "MLP",
    "OUTPUTS",
    "Activation",
    "Dense",
    "Dropout",
    "Flatten",
    "Head",
    "Layer",
    "Sequential",
    "init_std",
    "init_weights",
    "make_activation",
]
