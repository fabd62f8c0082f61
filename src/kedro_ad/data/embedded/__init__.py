"""The embedded industrial-inspection dataset, generated in MVTec AD layout.

This is the dataset a newcomer's ``make run`` uses (``data.source: embedded``): it
is rendered deterministically from a seed (numpy, scipy and Pillow only) into::

    <root>/<class>/train/good/000.png
    <root>/<class>/test/good/000.png
    <root>/<class>/test/<defect>/000.png
    <root>/<class>/ground_truth/<defect>/000_mask.png   (single channel, 0 / 255)
    <root>/embedded.json                                (fingerprint + summary)

(Not to be confused with :mod:`kedro_ad.synthesis`, which pastes synthetic defects
onto any dataset's images for training and checkpoint choice.)

Rendering model. Each sample is a clean *surface* (albedo x shading: woven fabric,
wood, brushed metal, or an object on a conveyor belt / inspection tray with pose
jitter) drawn from its own random stream. A defect either composites alpha layers on
that surface (scratch, crack, hole, stain, contamination) or re-renders the scene
with a changed part (missing bolt hole, misplaced print, missing / misplaced
component). Illumination (gain, gradient, vignetting, colour temperature), optics
blur and sensor noise are then applied identically to the clean and the defective
surface. The ground-truth mask is the set of pixels whose 8-bit value changed by
more than ``MASK_TOLERANCE``; every other pixel is reset to the clean render, so
pixels outside the mask are bit-identical to the ``clean`` image returned by
:func:`render_sample`, and the mask is exactly ``(image != clean).any(-1)``.

Defect shapes are lines, branching cracks, pits, harmonic star-shaped stains,
particles, fibres and parts -- never Perlin-noise blobs, so methods that synthesise
Perlin anomalies during training are not evaluated on their own training
distribution.

One module per part: ``noise`` (numeric helpers), ``font`` (stroke font),
``canvas`` (object canvas), ``scenes`` (the classes' scenes), ``defects`` (surface
defect painters), ``classes`` (the registry), ``camera`` (illumination, optics,
sensor), ``sample`` (one image and its mask), ``writer`` (the dataset on disk).
"""

from .classes import EMBEDDED_CLASSES, EMBEDDED_DEFECTS, PART_DEFECT_TYPES
from .sample import MASK_TOLERANCE, MAX_MASK_FRACTION, MIN_MASK_FRACTION, render_sample
from .writer import FINGERPRINT_FILE, GENERATOR_VERSION, generate_embedded_dataset

__all__ = [
    "EMBEDDED_CLASSES",
    "EMBEDDED_DEFECTS",
    "FINGERPRINT_FILE",
    "GENERATOR_VERSION",
    "MASK_TOLERANCE",
    "MAX_MASK_FRACTION",
    "MIN_MASK_FRACTION",
    "PART_DEFECT_TYPES",
    "generate_embedded_dataset",
    "render_sample",
]
