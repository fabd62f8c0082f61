"""The KL autoencoder shared by DiAD and the LDM baseline."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
