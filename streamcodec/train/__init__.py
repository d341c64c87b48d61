"""Training of EVC models: data, loop, checkpoints and weights files."""

from .loop import DEFAULT_LAMBDAS, TrainConfig, Trainer
from .weights import load_weights, save_weights

__all__ = ["DEFAULT_LAMBDAS", "TrainConfig", "Trainer", "load_weights", "save_weights"]
