"""kedro-ad: diffusion-based industrial image anomaly detection as a Kedro project."""

__version__ = "0.1.0"
