"""Photos and any image: face detection, 68 landmarks, 2D asymmetry, mirror composites, scores.

dlib (extra ``photos``) is imported only when a :class:`FaceFinder` is built; the geometry,
asymmetry and composite functions need only numpy and torch.
"""

from facesym.photos.asymmetry import NEUTRAL_TEMPLATE, asym_2d_photo, mirror_asymmetry
from facesym.photos.composite import SIDES, composite_series, mirror_composite
from facesym.photos.geometry import MIDLINE68, Midline, fit_midline, line_through

__all__ = [
    "MIDLINE68", "NEUTRAL_TEMPLATE", "SIDES", "Midline", "asym_2d_photo", "composite_series",
    "fit_midline", "line_through", "mirror_asymmetry", "mirror_composite",
]
