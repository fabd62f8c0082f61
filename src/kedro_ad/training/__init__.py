"""The shared training loop (Accelerate): checkpoints, resume, best-on-validation."""

from .loop import TrainConfig, TrainResult, fit, step_seed

__all__ = ["TrainConfig", "TrainResult", "fit", "step_seed"]
