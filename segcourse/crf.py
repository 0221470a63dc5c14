"""A fully connected CRF on a network's class probabilities, solved by mean-field inference.

Krähenbühl & Koltun, "Efficient Inference in Fully Connected CRFs with Gaussian Edge
Potentials", NIPS 2011; DeepLab v1/v2 (Chen et al., ICLR 2015; TPAMI 2018) refine their
network's output with it. Every pixel is connected to every other one. The energy of a labelling
x is

    E(x) = Σ_i ψ_u(x_i) + Σ_{i<j} μ(x_i, x_j) k(f_i, f_j)

- unary ψ_u(x_i) = −log P(x_i), P the network's probabilities;
- Potts compatibility μ(l, l') = [l ≠ l'];
- two Gaussian kernels (the paper's Eq. 3), p a pixel's position (row, column), I its colour:
  appearance (bilateral) w1·exp(−|p_i−p_j|²/2θα² − |I_i−I_j|²/2θβ²): nearby pixels of similar
  colour should share a label; smoothness w2·exp(−|p_i−p_j|²/2θγ²): removes small isolated
  regions.

Mean field (the paper's Algorithm 1) approximates P(x) by a product of per-pixel distributions
Q_i. Each iteration is that algorithm's steps, with its compatibility transform split in two
(weighting the kernels' outputs, then compatibility) and named as Zheng et al. (ICCV 2015, "CRF
as RNN", Algorithm 1) write them, in :func:`dense_crf`'s loop. All the
cost is in the message passing, Σ_{j≠i} k(f_i, f_j) Q_j(l) for every pixel i: N² pairs. Two
ways here:

- ``method="exact"``: every pair, in blocks of rows so memory stays bounded
  (:func:`exact_kernel_sums`). O(N²): about a minute per iteration at 128×128; for small
  pictures, and as the reference the fast path is tested against.
- ``method="fast"`` (default): the smoothness kernel is a separable Gaussian, filtered exactly
  along rows and columns (:func:`gaussian_filter_sums`), leaving out pairs more than
  ``TRUNCATE`` = 4 θγ apart along an axis (weights below exp(−8) ≈ 3·10⁻⁴; about 6·10⁻⁵ of
  the 1-D Gaussian's total). The appearance kernel lives in 5-D
  (row, column, r, g, b) and is approximated by a sparse bilateral grid (:class:`BilateralGrid`,
  Paris & Durand, ECCV 2006; Chen, Paris & Durand, SIGGRAPH 2007): splat each pixel onto the 32
  corners of its grid cell, blur the grid with [1, 2, 1]/4 along each of the 5 axes, slice back.
  The paper uses the permutohedral lattice (Adams, Baek & Davis, Eurographics 2010) instead;
  both are fast approximations of the same Gaussian filter. Measured against the exact path
  (36 pictures and parameter settings, 24×24): the normalised messages the CRF uses (below)
  within 0.10 of the exact ones, 0.012 on average (they lie in [0, 1]); the raw sums within
  40 % of the largest exact sum, because the grid's kernel at short range depends on where
  a pixel sits in its cell, and a flat region's colour sits at one place for all its pixels;
  after 5 iterations on 32×32 pictures the labels agree on at least 99.5 % of the pixels
  (``tests/test_crf.py`` asserts slightly looser bounds).

Defaults. The weights and widths are the common use-case values in the README of pydensecrf
(the Python wrapper of the reference C++ implementation), copied by many projects:
smoothness w2 = 3, θγ = 3 pixels; appearance w1 = 10, θα = 80 pixels, θβ = 13 intensity levels
on the 0..255 scale; 5 iterations (DeepLab runs 10). They are not the paper's own tuned values.
θβ is given on the 0..255 scale, the scale those values were tuned on, while images here are
RGB floats in [0, 1] like everywhere in segcourse (``data``, ``viz``); an image in 0..255 is
refused with a hint.

Normalisation. The reference C++ implementation normalises each kernel's message: its first
release (2011) divides by the kernel's row sum Σ_j k(f_i, f_j) (self included), its second
(the one pydensecrf wraps) by default symmetrically, by √(row sum) on both sides. Either way
a weight means the same on a picture of any size, and the default values assume it.
``normalize=True`` (the default) divides as the first release does: the message is
Σ_{j≠i} k(f_i,f_j) Q_j(l) / Σ_j k(f_i,f_j), a weighted average of the other pixels' beliefs,
between 0 and 1 (the reference also keeps j = i in the numerator; here it is left out, as in
the paper). ``normalize=False`` is the paper's Algorithm 1 word for word; its weights must
then be chosen for the picture's size (the sums grow with it).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

#: Defaults (see the module docstring for where they come from).
ITERATIONS = 5
APPEARANCE_WEIGHT = 10.0  # w1
THETA_ALPHA = 80.0  # pixels
THETA_BETA = 13.0  # intensity levels, 0..255 scale
SMOOTHNESS_WEIGHT = 3.0  # w2
THETA_GAMMA = 3.0  # pixels

#: The separable smoothness filter ignores pairs farther apart than this many θγ along an axis.
TRUNCATE = 4.0

#: Probabilities are clipped to this before the log, so a probability of 0 is a large finite
#: cost (27.6), not an infinite one.
MIN_PROBABILITY = 1e-12

#: Rows per block in the exact message passing: a block holds BLOCK_ELEMENTS // N rows.
BLOCK_ELEMENTS = 1 << 22

METHODS = ("fast", "exact")


# --- checking what comes in -------------------------------------------------------------------

def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be one RGB picture of shape (H, W, 3); got shape "
                         f"{image.shape}. Give one picture, not a batch (image[0]).")
    if image.size == 0:
        raise ValueError(f"image has no pixels (shape {image.shape}).")
    if image.dtype.kind != "f":
        raise ValueError(f"image must be floats in [0, 1] (segcourse's convention); got dtype "
                         f"{image.dtype}. For 8-bit pixels pass image / 255.")
    if not np.isfinite(image).all():
        raise ValueError("image holds NaN or infinite values; give finite RGB values in [0, 1].")
    low, high = float(image.min()), float(image.max())
    if high > 1.0:
        raise ValueError(f"image values must lie in [0, 1]; the largest is {high:g}. If the "
                         "picture is on the 0..255 scale, pass image / 255.")
    if low < 0.0:
        raise ValueError(f"image values must lie in [0, 1]; the smallest is {low:g}. Undo the "
                         "normalisation (mean/std) the network's input had.")
    return image.astype(np.float64)


def _check_scores(probabilities, image_shape, from_logits: bool) -> np.ndarray:
    scores = np.asarray(probabilities)
    what = "logits" if from_logits else "probabilities"
    if scores.ndim != 3:
        raise ValueError(f"{what} must have shape (H, W, C); got shape {scores.shape}. Give one "
                         "picture's scores, not a batch.")
    if scores.shape[:2] != tuple(image_shape[:2]):
        raise ValueError(f"{what} of shape {scores.shape} do not match the image's "
                         f"{tuple(image_shape[:2])} pixels: upsample the network's output to "
                         "the picture's size first.")
    if scores.shape[-1] < 1:
        raise ValueError(f"{what} need at least one class; got shape {scores.shape}.")
    if scores.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be numbers; got dtype {scores.dtype}.")
    scores = scores.astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError(f"{what} hold NaN or infinite values.")
    # The same rule, tolerance and wording as segcourse.losses' check (which only warns).
    low, high = float(scores.min()), float(scores.max())
    inside = low >= 0 and high <= 1
    sums = scores.sum(-1)
    if from_logits:
        if scores.shape[-1] >= 2 and inside and np.allclose(sums, 1, atol=1e-3):
            raise ValueError(f"logits look like probabilities (each pixel's scores lie in "
                             f"[0, 1], here {low:.3g} to {high:.3g}, and sum to 1), but "
                             "from_logits=True applies a softmax to them again, which flattens "
                             "the unaries (P = (0.9, 0.1) would become (0.69, 0.31)). Pass "
                             "from_logits=False for probabilities, or give the network's "
                             "logits.")
        return scores
    if not inside:
        raise ValueError(f"from_logits=False but the probabilities hold values outside [0, 1] "
                         f"({low:.3g} to {high:.3g}): logits, not probabilities. Pass "
                         "from_logits=True, or apply a softmax first.")
    worst = float(sums.flat[np.argmax(np.abs(sums - 1))])
    if not np.allclose(sums, 1, atol=1e-3):
        raise ValueError(f"probabilities must sum to 1 over the class axis; one pixel's sum is "
                         f"{worst:g}. If these are logits, pass from_logits=True; otherwise "
                         "normalise each pixel's scores.")
    return scores


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
    return float(value)


def _check_weight(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0 (0 switches the kernel off); "
                         f"got {value!r}.")
    return float(value)


def _check_iterations(iterations) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or (
            iterations < 0):
        raise ValueError(f"iterations must be a whole number >= 0; got {iterations!r}.")
    return int(iterations)


# --- potentials and features ------------------------------------------------------------------

def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x) normalised over the last axis (numerically stable)."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def unary_potentials(probabilities, from_logits: bool = False) -> np.ndarray:
    """ψ_u = −log P for scores ``(H, W, C)``: probabilities (clipped at ``MIN_PROBABILITY``)
    or, with ``from_logits``, logits (−log softmax)."""
    scores = np.asarray(probabilities, dtype=np.float64)
    if from_logits:
        shifted = scores - scores.max(-1, keepdims=True)
        return np.log(np.exp(shifted).sum(-1, keepdims=True)) - shifted
    return -np.log(np.maximum(scores, MIN_PROBABILITY))


def _positions(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)


def appearance_features(image, theta_alpha: float = THETA_ALPHA,
                        theta_beta: float = THETA_BETA) -> np.ndarray:
    """``(H·W, 5)`` features (row/θα, column/θα, 255·r/θβ, 255·g/θβ, 255·b/θβ) of an RGB
    image in [0, 1], so that the appearance kernel is exp(−|f_i − f_j|²/2)."""
    image = np.asarray(image, dtype=np.float64)
    height, width = image.shape[:2]
    colour = image.reshape(-1, 3) * (255.0 / theta_beta)
    return np.concatenate([_positions(height, width) / theta_alpha, colour], axis=1)


def smoothness_features(height: int, width: int, theta_gamma: float = THETA_GAMMA) -> np.ndarray:
    """``(H·W, 2)`` features (row/θγ, column/θγ): the smoothness kernel is exp(−|f_i − f_j|²/2)."""
    return _positions(height, width) / theta_gamma


# --- message passing, exactly -----------------------------------------------------------------

def exact_kernel_sums(features, values, block_elements: int = BLOCK_ELEMENTS) -> np.ndarray:
    """Σ_{j≠i} exp(−|f_i − f_j|²/2) · values_j for every i, over all N² pairs.

    ``features`` ``(N, D)``, ``values`` ``(N, C)``. Rows are taken in blocks of
    ``block_elements // N`` so that no more than ``block_elements`` pair weights exist at once.
    """
    features = np.asarray(features, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    count = len(features)
    squares = (features ** 2).sum(1)
    out = np.empty_like(values)
    rows = max(1, block_elements // max(count, 1))
    for start in range(0, count, rows):
        block = slice(start, start + rows)
        distance2 = squares[block, None] + squares[None, :] - 2 * features[block] @ features.T
        out[block] = np.exp(-0.5 * np.maximum(distance2, 0.0)) @ values
    return out - values  # k(f_i, f_i) = 1: leave the pixel itself out


# --- message passing, fast --------------------------------------------------------------------

def _filter_axis(values: np.ndarray, theta: float, truncate: float, axis: int) -> np.ndarray:
    """Σ_d exp(−d²/2θ²) · values shifted by d along ``axis``, for |d| ≤ truncate·θ (d = 0
    included): shifted adds, one per offset, so no matrix product and no BLAS threads."""
    values = np.ascontiguousarray(np.moveaxis(values, axis, 0))
    length = len(values)
    out = values.copy()  # d = 0, weight 1
    for d in range(1, min(math.floor(truncate * theta), length - 1) + 1):
        weight = math.exp(-0.5 * (d / theta) ** 2)
        out[:-d] += weight * values[d:]  # the pixel d further along
        out[d:] += weight * values[:-d]  # the pixel d back
    return np.moveaxis(out, 0, axis)


def gaussian_filter_sums(values, theta: float, truncate: float = TRUNCATE) -> np.ndarray:
    """Σ_{j≠i} exp(−|p_i − p_j|²/2θ²) · values_j for ``values`` ``(H, W, C)``.

    The 2-D Gaussian of positions is a product of a row Gaussian and a column Gaussian, so the
    sum is a 1-D filter down the columns, then one along the rows: O(N·θ) instead of O(N²).
    Pairs more than ``truncate``·θ apart along an axis are left out (at 4θ a weight below
    exp(−8) = 3·10⁻⁴); otherwise the sum is exact.
    """
    values = np.asarray(values, dtype=np.float64)
    filtered = _filter_axis(_filter_axis(values, theta, truncate, 0), theta, truncate, 1)
    return filtered - values  # weight 1 at distance 0: leave the pixel itself out


class BilateralGrid:
    """An approximate Gaussian filter in feature space: Σ_{j≠i} exp(−|f_i − f_j|²/2)·v_j.

    A sparse grid with spacing ``SPACING`` (in feature units) along every axis; only the cells
    that some pixel touches are stored (a 5-D grid of a 128×128 picture's colours is mostly
    empty). Three steps (Paris & Durand 2006; Chen, Paris & Durand 2007):

    1. splat: each pixel's value goes to the 2^D corners of its cell, by multilinear weights;
    2. blur: [1, 2, 1]/4 along each axis in turn (cells not stored count as 0, and what would
       land on them is dropped: part of the approximation);
    3. slice: each pixel reads its corners back with the same weights.

    The three together are a bell of variance SPACING²·(1/6 + 1/2 + 1/6) per axis (tent,
    blur, tent), which SPACING = √(6/5) makes 1, the Gaussian's; ``scale`` = (2π)^(D/2) /
    SPACING^D turns the grid's unit mass into the Gaussian's peak of 1. The pixel's own share
    (exact for the grid's kernel) is removed, as the message passing leaves j = i out.
    The grid depends on the features only: build it once per picture, filter every iteration.
    It keeps 32 corner indices and weights per pixel (512 bytes: 134 MB for 512×512).
    """

    SPACING = math.sqrt(6 / 5)

    def __init__(self, features):
        features = np.asarray(features, dtype=np.float64)
        count, dims = features.shape
        scaled = features / self.SPACING
        base = np.floor(scaled).astype(np.int64)
        fraction = scaled - base
        corners = np.array(np.meshgrid(*[[0, 1]] * dims, indexing="ij")).reshape(dims, -1).T
        # Multilinear weights of the 2^D corners, (N, 2^D).
        weights = np.ones((count, len(corners)))
        for axis in range(dims):
            upper = corners[:, axis] == 1
            weights *= np.where(upper, fraction[:, axis:axis + 1], 1 - fraction[:, axis:axis + 1])
        # Cell keys: coordinates shifted to start at 1 (a free cell either side), then raveled.
        coords = base - base.min(0) + 1
        extent = coords.max(0) + 3
        if np.prod(extent.astype(float)) >= 2.0 ** 62:
            raise ValueError(f"the bilateral grid would need {np.prod(extent.astype(float)):.3g} "
                             "cells (θ's much smaller than the picture): use larger θ's or "
                             "method='exact'.")
        strides = np.cumprod(np.concatenate([[1], extent[:0:-1]]))[::-1]
        keys = ((coords[:, None, :] + corners[None]) * strides).sum(-1)
        self.cells, index = np.unique(keys.ravel(), return_inverse=True)
        self.index = index.reshape(count, len(corners))
        self.weights = weights
        # Each cell's neighbours along each axis (len(cells) = absent, a zero row).
        self.neighbours = []
        for stride in strides:
            pair = []
            for step in (-stride, stride):
                target = self.cells + step
                at = np.minimum(np.searchsorted(self.cells, target), len(self.cells) - 1)
                pair.append(np.where(self.cells[at] == target, at, len(self.cells)))
            self.neighbours.append(pair)
        self.scale = (2 * math.pi) ** (dims / 2) / self.SPACING ** dims
        # The grid's own kernel at distance 0, pixel by pixel: per axis Σ_ab w_a w_b b(a − b)
        # with b(0) = 1/2, b(±1) = 1/4 over the cell's two corners.
        self_weight = np.full(count, self.scale)
        for axis in range(dims):
            low, high = 1 - fraction[:, axis], fraction[:, axis]
            self_weight *= 0.5 * (low ** 2 + high ** 2) + 0.5 * low * high
        self.self_weight = self_weight

    def filter(self, values) -> np.ndarray:
        """Σ_{j≠i} k̃(f_i, f_j) · values_j for ``values`` ``(N, C)``, one column at a time."""
        values = np.asarray(values, dtype=np.float64)
        size = len(self.cells)
        out = np.empty_like(values)
        for c in range(values.shape[1]):
            grid = np.zeros(size + 1)  # the last cell stands for every absent one: always 0
            # 1. splat
            mass = self.weights * values[:, c:c + 1]
            grid[:size] = np.bincount(self.index.ravel(), mass.ravel(), minlength=size)
            # 2. blur, one axis at a time
            for before, after in self.neighbours:
                grid[:size] = 0.5 * grid[:size] + 0.25 * (grid[before] + grid[after])
            # 3. slice
            out[:, c] = np.einsum("nk,nk->n", self.weights, grid.take(self.index))
        return np.maximum(out * self.scale - self.self_weight[:, None] * values, 0.0)


# --- mean-field inference ---------------------------------------------------------------------

def _message_passing(image, method: str, theta_alpha: float, theta_beta: float,
                     theta_gamma: float, normalize: bool, weights: tuple[float, float]):
    """The two filters Q ↦ Σ_{j≠i} k(f_i, f_j) Q_j (appearance, smoothness), as callables on
    ``(H, W, C)`` arrays, optionally divided by Σ_j k(f_i, f_j). A kernel of weight 0 is not
    built: its filter gives zeros."""
    height, width = image.shape[:2]
    appearance = appearance_features(image, theta_alpha, theta_beta)
    if method == "exact":
        smoothness = smoothness_features(height, width, theta_gamma)

        def appearance_sums(q):
            return exact_kernel_sums(appearance, q.reshape(height * width, -1)).reshape(q.shape)

        def smoothness_sums(q):
            return exact_kernel_sums(smoothness, q.reshape(height * width, -1)).reshape(q.shape)
    else:
        grid = BilateralGrid(appearance) if weights[0] else None

        def appearance_sums(q):
            return grid.filter(q.reshape(height * width, -1)).reshape(q.shape)

        def smoothness_sums(q):
            return gaussian_filter_sums(q, theta_gamma)

    filters = []
    for sums, weight in zip((appearance_sums, smoothness_sums), weights, strict=True):
        if weight == 0:
            filters.append(np.zeros_like)
        elif normalize:
            # Σ_j k(f_i, f_j), the pixel itself (weight 1) included, as the reference does.
            row_sum = 1.0 + sums(np.ones((height, width, 1)))
            filters.append(lambda q, sums=sums, row_sum=row_sum: sums(q) / row_sum)
        else:
            filters.append(sums)
    return filters


def dense_crf(image, probabilities, iterations: int = ITERATIONS, *, from_logits: bool = False,
              appearance_weight: float = APPEARANCE_WEIGHT, theta_alpha: float = THETA_ALPHA,
              theta_beta: float = THETA_BETA, smoothness_weight: float = SMOOTHNESS_WEIGHT,
              theta_gamma: float = THETA_GAMMA, normalize: bool = True,
              method: str = "fast") -> np.ndarray:
    """Mean-field inference in the fully connected CRF (Krähenbühl & Koltun 2011, Algorithm 1).

    ``image``: RGB ``(H, W, 3)`` floats in [0, 1]. ``probabilities``: the network's ``(H, W, C)``
    class probabilities (each pixel's sum 1), or logits with ``from_logits=True``; scores that
    plainly do not match ``from_logits`` are refused (probabilities as logits would be
    softmaxed again, flattening the unaries; logits as probabilities make no −log). θα, θγ in
    pixels, θβ in intensity levels of the 0..255 scale. Returns Q, ``(H, W, C)`` float64
    probabilities; ``dense_crf(...).argmax(-1)`` (or :func:`crf_labels`) are the labels.
    ``method``: "fast" (separable filter + bilateral grid) or "exact" (all N² pairs).
    """
    image = _check_image(image)
    scores = _check_scores(probabilities, image.shape, from_logits)
    iterations = _check_iterations(iterations)
    w1 = _check_weight("appearance_weight (w1)", appearance_weight)
    w2 = _check_weight("smoothness_weight (w2)", smoothness_weight)
    theta_alpha = _check_positive("theta_alpha", theta_alpha)
    theta_beta = _check_positive("theta_beta", theta_beta)
    theta_gamma = _check_positive("theta_gamma", theta_gamma)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")

    unary = unary_potentials(scores, from_logits)
    # Initialize: Q_i(x_i) = exp(−ψ_u(x_i)) / Z_i
    Q = softmax(-unary)
    if iterations == 0 or (w1 == 0 and w2 == 0):
        return Q
    appearance, smoothness = _message_passing(image, method, theta_alpha, theta_beta,
                                              theta_gamma, normalize, (w1, w2))
    for _ in range(iterations):
        # Message passing: Q̃(m)_i(l) = Σ_{j≠i} k(m)(f_i, f_j) Q_j(l), one per kernel
        appearance_message, smoothness_message = appearance(Q), smoothness(Q)
        # Weighting filter outputs: Q̂_i(l) = Σ_m w(m) Q̃(m)_i(l)
        weighted = w1 * appearance_message + w2 * smoothness_message
        # Compatibility transform (Potts): Q̌_i(l) = Σ_l' μ(l, l') Q̂_i(l') = Σ_{l'≠l} Q̂_i(l')
        pairwise = weighted.sum(-1, keepdims=True) - weighted
        # Adding unary potentials, and normalizing: Q_i(l) = exp(−ψ_u(l) − Q̌_i(l)) / Z_i
        Q = softmax(-unary - pairwise)
    return Q


def crf_labels(image, probabilities, iterations: int = ITERATIONS, **options) -> np.ndarray:
    """The labels ``(H, W)`` (int64) of :func:`dense_crf`'s Q: argmax over the classes."""
    return dense_crf(image, probabilities, iterations, **options).argmax(-1)
