"""The shared training loop (Accelerate): checkpoints, resume, best-on-validation."""

from .loop import TrainConfig, TrainResult, fit, seed_weights, step_seed

__all__ = ["TrainConfig", "TrainResult", "fit", "seed_weights", "step_seed"]
