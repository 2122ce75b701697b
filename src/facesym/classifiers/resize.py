"""The image resizes of the classifiers' own packages, reproduced in numpy.

Each function takes a uint8 (or float) image and returns what the named library returns for
it, so that ``preprocess: original`` feeds a network what its package would. Checked against
the libraries themselves by ``tests/test_original_preprocess.py`` (PIL live, OpenCV and
scikit-image through a fixture made by ``scripts/parity/resize_reference.py``).

- :func:`cv2_resize_linear`: ``cv2.resize(img, (w, h))`` on uint8 (``INTER_LINEAR``):
  half-pixel centres, edge clamp, 11-bit fixed-point weights, the SIMD vertical pass's
  rounding; bit-exact when downscaling (the classifiers' case), within one grey level on a
  few edge-row pixels when upscaling.
- :func:`pil_resize_bilinear`: ``PIL.Image.resize((w, h), BILINEAR)`` on 8-bit images
  (a triangle filter widened by the scale when downscaling, 22-bit fixed point, horizontal
  pass first, each pass rounded to uint8).
- :func:`skimage_resize`: ``skimage.transform.resize`` with its defaults (float in [0, 1],
  Gaussian anti-aliasing when downscaling, linear spline zoom, mirror edges, clip).
- :func:`tf_resize_bilinear_legacy`: ``tf.image.resizeBilinear(x, size, false, false)``
  (tfjs: no half-pixel centres, float32).
"""

from __future__ import annotations

import numpy as np

CV_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
PIL_PRECISION_BITS = 22  # Pillow's PRECISION_BITS for 8-bit resampling


def _cv2_axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lo, hi) and fixed-point weights (w_lo, w_hi) along one axis."""
    scale = 1.0 / (n_out / n_in)  # OpenCV: scale = 1 / inv_scale, in double
    f = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
    lo = np.floor(f).astype(np.int64)
    f = (f - lo).astype(np.float32)
    low = lo < 0
    f[low], lo[low] = 0, 0
    high = lo >= n_in - 1
    f[high], lo[high] = 0, n_in - 1
    one = np.float32(1 << CV_COEF_BITS)
    w_lo = np.rint((np.float32(1) - f) * one).astype(np.int64)
    w_hi = np.rint(f * one).astype(np.int64)
    return lo, np.minimum(lo + 1, n_in - 1), w_lo, w_hi


def cv2_resize_linear(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize(img, (width, height))`` (bilinear) of a 2-D uint8 image (OpenCV 5.1).

    >>> img = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    >>> cv2_resize_linear(img, 4, 4)
    array([[  0,  25,  75, 100],
           [ 50,  72, 117, 139],
           [150, 167, 200, 216],
           [200, 214, 241, 255]], dtype=uint8)
    """
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError("cv2_resize_linear takes a 2-D uint8 image")
    xl, xh, ax0, ax1 = _cv2_axis(img.shape[1], width)
    yl, yh, by0, by1 = _cv2_axis(img.shape[0], height)
    src = img.astype(np.int64)
    rows = src[:, xl] * ax0 + src[:, xh] * ax1  # horizontal pass, ints scaled by 2^11
    r0, r1 = rows[yl] >> 4, rows[yh] >> 4
    # OpenCV's vectorised vertical pass (every row of these widths): two 16-bit high
    # multiplies, then (t + 2) >> 2; not the scalar (s + 2^21) >> 22, which differs by ±1.
    t = ((r0 * by0[:, None]) >> 16) + ((r1 * by1[:, None]) >> 16)
    return np.clip((t + 2) >> 2, 0, 255).astype(np.uint8)


def _pil_coefficients(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's bilinear resampling matrix (n_out, n_in) in 22-bit fixed point."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # bilinear filter support is 1
    mat = np.zeros((n_out, n_in), dtype=np.int64)
    for i in range(n_out):
        centre = (i + 0.5) * scale
        xmin = max(int(centre - support + 0.5), 0)
        xmax = min(int(centre + support + 0.5), n_in)
        x = np.arange(xmin, xmax)
        w = np.maximum(0.0, 1.0 - np.abs((x - centre + 0.5) / filterscale))
        total = w.sum()
        if total != 0:
            w = w / total
        fixed = np.where(w < 0, np.trunc(-0.5 + w * (1 << PIL_PRECISION_BITS)),
                         np.trunc(0.5 + w * (1 << PIL_PRECISION_BITS)))
        mat[i, xmin:xmax] = fixed.astype(np.int64)
    return mat


def pil_resize_bilinear(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """``PIL.Image.fromarray(img).resize((width, height), BILINEAR)`` of a 2-D uint8 image.

    >>> img = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    >>> pil_resize_bilinear(img, 1, 1)
    array([[139]], dtype=uint8)
    """
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError("pil_resize_bilinear takes a 2-D uint8 image")
    half = 1 << (PIL_PRECISION_BITS - 1)
    out = img.astype(np.int64)
    if width != img.shape[1]:
        kx = _pil_coefficients(img.shape[1], width)
        out = np.clip((out @ kx.T + half) >> PIL_PRECISION_BITS, 0, 255)
    if height != img.shape[0]:
        ky = _pil_coefficients(img.shape[0], height)
        out = np.clip((ky @ out + half) >> PIL_PRECISION_BITS, 0, 255)
    return out.astype(np.uint8)


def skimage_resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``skimage.transform.resize(img, (height, width))`` of a 2-D uint8 image (float64).

    >>> img = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    >>> skimage_resize(img, 4, 4).round(3)
    array([[0.375, 0.375, 0.625, 0.625],
           [0.375, 0.375, 0.625, 0.625],
           [0.625, 0.625, 0.375, 0.375],
           [0.625, 0.625, 0.375, 0.375]])
    """
    from scipy import ndimage

    image = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    factors = np.divide(image.shape, (height, width))
    if np.any(factors > 1):  # anti_aliasing defaults to True when any axis shrinks
        sigma = np.maximum(0, (factors - 1) / 2)
        image_f = ndimage.gaussian_filter(image, sigma, cval=0, mode="mirror")
    else:
        image_f = image
    out = ndimage.zoom(image_f, 1 / factors, order=1, mode="mirror", cval=0, grid_mode=True)
    return np.clip(out, image.min(), image.max())


def tf_resize_bilinear_legacy(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """TensorFlow(.js) ``resizeBilinear`` without align-corners or half-pixel centres.

    ``img`` is (H, W[, C]); the result is float32 (H', W'[, C]).

    >>> img = np.array([[0.0, 100.0], [200.0, 255.0]], dtype=np.float32)
    >>> tf_resize_bilinear_legacy(img, 4, 4)
    array([[  0.  ,  50.  , 100.  , 100.  ],
           [100.  , 138.75, 177.5 , 177.5 ],
           [200.  , 227.5 , 255.  , 255.  ],
           [200.  , 227.5 , 255.  , 255.  ]], dtype=float32)
    """
    x = np.asarray(img, dtype=np.float32)

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.arange(n_out, dtype=np.float32) * np.float32(n_in / n_out)
        lo = np.floor(src).astype(np.int64)
        return lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32)

    yl, yh, fy = axis(x.shape[0], height)
    xl, xh, fx = axis(x.shape[1], width)
    extra = (None,) * (x.ndim - 2)
    fx = fx[(None, slice(None), *extra)]
    fy = fy[(slice(None), None, *extra)]
    top = x[yl][:, xl] + (x[yl][:, xh] - x[yl][:, xl]) * fx
    bottom = x[yh][:, xl] + (x[yh][:, xh] - x[yh][:, xl]) * fx
    return (top + (bottom - top) * fy).astype(np.float32)
