"""What every method needs besides its network: where to run, and class indices.

* :func:`device` -- the device models train and score on.
* :func:`class_ids` -- each image's class name as an index into the classes a model
  was trained with (class-conditioned networks, per-class Gaussians or statistics).

Pure PyTorch: no kedro, mlflow or accelerate import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["class_ids", "device"]


def device() -> torch.device:
    """The first CUDA GPU when there is one, else the CPU.

    Training runs through Accelerate, which makes the same choice; scoring and
    serving call this, so a model is scored where it was trained.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def class_ids(
    classes: Sequence[Any] | None, known: Sequence[Any], n: int, owner: str
) -> torch.Tensor:
    """Indices of ``classes`` in ``known`` as a long tensor ``[len(classes)]``.

    Args:
        classes: each image's class name, or None when the caller has none; that
            is allowed only for a model that knows a single class (every image is
            of it, ``n`` zeros come back).
        known: the class names the model was trained with, in its order.
        n: the number of images (used only when ``classes`` is None).
        owner: who asks (``"padim"``, ``"ran"``, ...), named in the errors, which a
            served model's user reads.

    Raises:
        ValueError: naming the unknown classes and the known ones, or asking for
            classes when the model knows several.
    """
    names = [str(c) for c in known]
    if classes is None:
        if len(names) != 1:
            raise ValueError(
                f"{owner}: the model is class-conditioned (it knows {len(names)} "
                f"classes {names}); pass each image's class: "
                '{"images": ..., "classes": [...]}'
            )
        return torch.zeros(int(n), dtype=torch.long)
    lookup = {c: i for i, c in enumerate(names)}
    wanted = [str(c) for c in classes]
    unknown = sorted(set(wanted) - set(lookup))
    if unknown:
        raise ValueError(
            f"{owner}: classes {unknown} are unknown to the model (it knows {names})"
        )
    return torch.as_tensor([lookup[c] for c in wanted], dtype=torch.long)
