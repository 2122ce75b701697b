"""Landmark quality on renders: dlib's detected landmarks against the projected mesh landmarks.

The renders store the exact 2D projections of the model's 68 landmark vertices; running the
photo pipeline on the rendered images and comparing tells how far the photo measures
(asymmetry, crops) can be trusted. The two schemes differ by definition on the jaw contour
(dlib follows the visible outline; the model marks fixed vertices), so both the mean over all
68 points and over the inner 51 (brows, eyes, nose, mouth) are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesym.photos.detect import FaceFinder

INNER68 = np.arange(17, 68)


@dataclass
class LandmarkError:
    """Per image: mean pixel error over all 68 and the inner 51 landmarks (NaN = no face)."""

    mean_px: np.ndarray
    inner_px: np.ndarray
    found: np.ndarray  # bool

    def summary(self) -> dict[str, float]:
        """Means over the images where a face was found, and the share found."""
        ok = self.found
        return {"mean_px": float(np.mean(self.mean_px[ok])) if ok.any() else float("nan"),
                "inner_px": float(np.mean(self.inner_px[ok])) if ok.any() else float("nan"),
                "found": float(ok.mean()) if len(ok) else float("nan")}


def landmark_error(images: np.ndarray, projected: np.ndarray, finder: FaceFinder
                   ) -> LandmarkError:
    """Detected vs projected landmarks of rendered images (N, H, W, 3) and (N, 68, 2).

    The face whose landmarks lie nearest the projected ones is used (renders hold one face).
    """
    n = len(images)
    mean_px, inner_px = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        faces = finder.find(images[i])
        if not faces:
            continue
        err = [np.linalg.norm(f.landmarks - projected[i], axis=-1) for f in faces]
        best = err[int(np.argmin([e.mean() for e in err]))]
        mean_px[i], inner_px[i] = best.mean(), best[INNER68].mean()
    return LandmarkError(mean_px, inner_px, np.isfinite(mean_px))
