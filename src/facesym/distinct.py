"""Distinct items of a stack, byte for byte: what the render and classify stages compute once.

The untouched renders (strength 0) are the same mesh and the same image for every side of a
face, and a neutral face's renders are all one image; rendering or scoring them once and
copying the result is exact. In the default design (3 sides × 5 strengths) a face has 13
distinct images of 15, a neutral face 1.
"""

from __future__ import annotations

import hashlib

import numpy as np


def distinct_rows(*stacks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group the items i of equal-length stacks (``stack[i]`` of each) by identical bytes of
    all of them: (first index of each distinct item, for each item its group's position).

    >>> a = np.array([[1, 2], [3, 4], [1, 2]]); b = np.zeros((3, 1))
    >>> [x.tolist() for x in distinct_rows(a, b)]
    [[0, 1], [0, 1, 0]]
    >>> [x.tolist() for x in distinct_rows(a, np.arange(3.0))]
    [[0, 1, 2], [0, 1, 2]]
    """
    n = len(stacks[0])
    if any(len(s) != n for s in stacks):
        raise ValueError(f"stacks of different lengths: {[len(s) for s in stacks]}")
    seen: dict[bytes, int] = {}
    first: list[int] = []
    which = np.empty(n, dtype=np.int64)
    for i in range(n):
        key = hashlib.blake2b(digest_size=16)
        for s in stacks:
            item = np.ascontiguousarray(s[i])
            key.update(str((item.dtype.str, item.shape)).encode())
            key.update(item.tobytes())
        k = key.digest()
        if k not in seen:
            seen[k] = len(first)
            first.append(i)
        which[i] = seen[k]
    return np.asarray(first, dtype=np.int64), which
