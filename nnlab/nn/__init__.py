"""The numpy network core: layers, activations, outputs and losses, models."""

from nnlab.nn.init import INITS, init_std, init_weights
from nnlab.nn.layers import Dense, Dropout, Flatten, Layer

__all__ = ["INITS", "Dense", "Dropout", "Flatten", "Layer", "init_std", "init_weights"]
