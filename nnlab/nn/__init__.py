"""The numpy network core: layers, activations, outputs and losses, models."""

from nnlab.nn.activations import ACTIVATIONS, Activation, make_activation
from nnlab.nn.cnn import CNN
from nnlab.nn.conv import Conv2D, MaxPool2D
from nnlab.nn.init import INITS, init_std, init_weights
from nnlab.nn.layers import Dense, Dropout, Flatten, Layer
from nnlab.nn.losses import LOSSES, OUTPUTS, Head
from nnlab.nn.model import MLP, Sequential

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "INITS",
    "LOSSES",
    "MLP",
    "OUTPUTS",
    "Activation",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Head",
    "Layer",
    "MaxPool2D",
    "Sequential",
    "init_std",
    "init_weights",
    "make_activation",
]
