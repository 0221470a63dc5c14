"""Exact Euclidean distance transforms in NumPy (no SciPy), for the U-Net weight map.

Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions", Theory of Computing
8 (2012), §2: the squared distance transform of a 2-D picture is a 1-D transform along every
column followed by one along every row, each the lower envelope of the parabolas
``(q − p)² + f(p)`` (their Algorithm DT(f)), O(n) per line. Here the lines of a picture are
processed together: the loop runs over positions, every line advances one step at a time, so
the Python overhead is per position, not per pixel. Distances are between pixel centres, in
pixels: a pixel next to a feature pixel is at distance 1, a diagonal neighbour at √2.
"""

from __future__ import annotations

import numpy as np


def _push(q, f, lifted, v, z, k):
    """Algorithm DT(f)'s first loop at position ``q``, on every line where ``f`` is finite
    there: pop the parabolas the one at ``q`` hides, then append it (updates ``v, z, k``)."""
    lines = np.flatnonzero(np.isfinite(f[:, q]))
    if not lines.size:
        return
    top = k[lines]
    s = np.empty(lines.size)
    todo = np.arange(lines.size)  # the lines still popping
    while todo.size:
        line, last_k = lines[todo], top[todo]
        on = last_k >= 0
        last = v[line, np.maximum(last_k, 0)]
        s[todo] = (lifted[line, q] - lifted[line, last]) / np.where(on, 2.0 * (q - last), 1.0)
        pop = on & (s[todo] <= z[line, np.maximum(last_k, 0)])
        top[todo[pop]] -= 1
        todo = todo[pop]
    top += 1
    k[lines] = top
    v[lines, top] = q
    z[lines, top] = np.where(top == 0, -np.inf, s)
    z[lines, top + 1] = np.inf


def _lower_envelope(f: np.ndarray) -> np.ndarray:
    """``min_p ((q − p)² + f[:, p])`` for every line of ``f (lines, n)``; ``inf`` values of
    ``f`` are points that take no part, and a line of only ``inf`` stays ``inf``."""
    lines, n = f.shape
    rows = np.arange(lines)
    v = np.zeros((lines, n), np.int64)       # positions of the envelope's parabolas
    z = np.full((lines, n + 1), np.inf)      # where parabola k starts to be the lowest
    k = np.full(lines, -1)                   # index of the last parabola; -1: none yet
    positions = np.arange(n, dtype=np.float64)
    lifted = f + positions**2                # f(p) + p², the known part of the numerator
    with np.errstate(invalid="ignore"):      # inf − inf on a line's first point: unused
        for q in range(n):
            _push(q, f, lifted, v, z, k)
    # Parabola j is the lowest for z[j] < q <= z[j + 1]: on each line, count its boundaries
    # z[1..k] below q (entries past k are left over from popped parabolas and do not count).
    # One sorted search for all lines: line L's keys and queries are offset by L · (n + 2).
    boundaries = np.clip(z[:, 1:n], -1.0, float(n))
    boundaries[np.arange(1, n)[None, :] > k[:, None]] = n + 0.5
    offsets = (rows * (n + 2.0))[:, None]
    found = np.searchsorted((boundaries + offsets).ravel(), (positions + offsets).ravel())
    which = found.reshape(lines, n) - (rows * (n - 1))[:, None]
    nearest = v[rows[:, None], which]
    result = (positions - nearest) ** 2 + f[rows[:, None], nearest]
    result[k < 0] = np.inf
    return result


def squared_distance_to(features) -> np.ndarray:
    """The squared Euclidean distance (float64, pixels²) from every pixel of a 2-D picture to
    the nearest ``True`` pixel of ``features``; ``inf`` everywhere when there is none. A stack
    ``(..., H, W)`` is transformed picture by picture, all in one pass (cheaper than a loop)."""
    features = np.asarray(features)
    if features.ndim < 2 or features.dtype != bool:
        raise ValueError(f"squared_distance_to takes a boolean picture (H, W) of the features, "
                         f"or a stack (..., H, W); got shape {features.shape}, dtype "
                         f"{features.dtype}. Pass e.g. labels == k.")
    height, width = features.shape[-2:]
    if features.size == 0:
        return np.zeros(features.shape)
    f = np.where(features, 0.0, np.inf).reshape(-1, height, width)
    columns = _lower_envelope(f.transpose(0, 2, 1).reshape(-1, height))
    columns = columns.reshape(-1, width, height).transpose(0, 2, 1)
    return _lower_envelope(columns.reshape(-1, width)).reshape(features.shape)


def distance_to(features) -> np.ndarray:
    """The Euclidean distance (float64, pixels) from every pixel to the nearest ``True`` pixel
    of ``features`` (``scipy.ndimage.distance_transform_edt(~features)``); ``inf`` where
    ``features`` has no ``True`` pixel. Takes a picture ``(H, W)`` or a stack ``(..., H, W)``."""
    return np.sqrt(squared_distance_to(features))
