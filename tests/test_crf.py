"""The fully connected CRF against independent truth: the paper's formulas written as double
loops and as a dense N×N matrix, the exact path for the fast one, and a picture where the
colour edge is known."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse import crf
from segcourse.data import shapes
from segcourse.metrics import confusion_matrix, scores


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def regions_picture(rng, size=32, noise=0.03):
    """A picture of flat-coloured regions (background, a disc, a stripe) with a little noise,
    and its region map."""
    rows, cols = np.mgrid[:size, :size]
    truth = np.zeros((size, size), np.int64)
    truth[(rows - size * 0.55) ** 2 + (cols - size * 0.6) ** 2 < (size * 0.3) ** 2] = 1
    truth[:, : size // 5] = 2
    colours = np.array([[0.2, 0.3, 0.8], [0.9, 0.6, 0.1], [0.3, 0.7, 0.3]])
    image = np.clip(colours[truth] + rng.normal(0, noise, (size, size, 3)), 0, 1)
    return image, truth


def noisy_probabilities(rng, truth, classes, spread):
    """The truth's one-hot logits plus Gaussian noise of ``spread``, as probabilities."""
    logits = 1.0 * np.eye(classes)[truth] + rng.normal(0, spread, (*truth.shape, classes))
    return softmax(logits)


# --- message passing -------------------------------------------------------------------------

def test_exact_message_passing_is_the_papers_sum_over_every_other_pixel(rng):
    """A double loop over pixel pairs with the paper's kernels (Eq. 3), positions in pixels and
    colours on the 0..255 scale, on a 5×4 picture."""
    height, width, classes = 5, 4, 3
    image = rng.uniform(0, 1, (height, width, 3))
    q = softmax(rng.normal(size=(height, width, classes)))
    theta_alpha, theta_beta, theta_gamma = 2.5, 60.0, 1.5
    appearance = np.zeros_like(q)
    smoothness = np.zeros_like(q)
    for yi in range(height):
        for xi in range(width):
            for yj in range(height):
                for xj in range(width):
                    if (yi, xi) == (yj, xj):
                        continue
                    position = (yi - yj) ** 2 + (xi - xj) ** 2
                    colour = np.sum((255 * image[yi, xi] - 255 * image[yj, xj]) ** 2)
                    appearance[yi, xi] += math.exp(-position / (2 * theta_alpha ** 2)
                                                   - colour / (2 * theta_beta ** 2)) * q[yj, xj]
                    smoothness[yi, xi] += math.exp(-position / (2 * theta_gamma ** 2)) * q[yj, xj]
    features = crf.appearance_features(image, theta_alpha, theta_beta)
    flat_q = q.reshape(-1, classes)
    np.testing.assert_allclose(crf.exact_kernel_sums(features, flat_q).reshape(q.shape),
                               appearance, rtol=1e-10, atol=1e-12)
    # Blocks of one, two and three rows give the same sums as one block.
    for block in (4, 8, 13):
        np.testing.assert_allclose(crf.exact_kernel_sums(features, flat_q, block).reshape(q.shape),
                                   appearance, rtol=1e-10, atol=1e-12)
    smooth = crf.smoothness_features(height, width, theta_gamma)
    np.testing.assert_allclose(crf.exact_kernel_sums(smooth, flat_q).reshape(q.shape),
                               smoothness, rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 14), width=st.integers(1, 14), classes=st.integers(1, 3),
       theta=st.floats(0.4, 6.0), seed=st.integers(0, 2 ** 16))
def test_the_separable_smoothness_filter_is_the_exact_sum_up_to_truncation(height, width,
                                                                          classes, theta, seed):
    values = np.random.default_rng(seed).uniform(0, 1, (height, width, classes))
    exact = crf.exact_kernel_sums(crf.smoothness_features(height, width, theta),
                                  values.reshape(-1, classes)).reshape(values.shape)
    # Untruncated, the two factors along rows and columns are the 2-D sum exactly.
    np.testing.assert_allclose(crf.gaussian_filter_sums(values, theta, truncate=1e9), exact,
                               rtol=1e-10, atol=1e-10)
    # Truncated at 4θ: a pair is dropped when its row or its column offset exceeds 4θ, so with
    # values in [0, 1] the loss is at most 2 · (dropped 1-D weight) · (whole 1-D weight).
    offsets = np.arange(-max(height, width), max(height, width) + 1)
    weights = np.exp(-0.5 * (offsets / theta) ** 2)
    dropped = weights[np.abs(offsets) > crf.TRUNCATE * theta].sum()
    truncated = crf.gaussian_filter_sums(values, theta)
    assert np.all(truncated <= exact + 1e-12)
    assert np.max(exact - truncated) <= 2 * dropped * weights.sum() + 1e-12


def normalized_messages(sums, values):
    return sums(values) / (1 + sums(np.ones((len(values), 1))))


@pytest.mark.parametrize("theta_alpha, theta_beta", [(80, 13), (10, 13), (20, 5)])
def test_the_bilateral_grid_is_close_to_the_exact_appearance_messages(rng, theta_alpha,
                                                                      theta_beta):
    """What the CRF uses by default: the messages divided by the kernel's row sum (both ways),
    within 0.12 of the exact ones (they lie in [0, 1]), 0.015 on average. The raw sums are
    rougher, within 40 % of the largest exact one: the grid's kernel at short range depends on
    where the two pixels sit in their cells, and a flat region's colour sits at one place in
    its cell for all its pixels (measured over 36 pictures and settings: at most 0.10, 0.012
    and 40 %)."""
    image, _ = regions_picture(rng, 24)
    features = crf.appearance_features(image, theta_alpha, theta_beta)
    q = softmax(rng.normal(0, 1.5, (len(features), 3)))
    exact_sums = crf.exact_kernel_sums(features, q)
    grid = crf.BilateralGrid(features)
    assert np.max(np.abs(grid.filter(q) - exact_sums)) <= 0.4 * exact_sums.max()
    error = np.abs(normalized_messages(grid.filter, q)
                   - normalized_messages(lambda v: crf.exact_kernel_sums(features, v), q))
    assert error.max() <= 0.12
    assert error.mean() <= 0.015


WEAK = dict(appearance_weight=2.0, theta_alpha=10.0, smoothness_weight=1.0)


@pytest.mark.parametrize("seed, options", [(1, {}), (2, WEAK), (5, WEAK)])
def test_fast_and_exact_inference_agree_on_the_labels(seed, options):
    """5 iterations on 24×24 pictures (flat regions; a shapes picture) with noisy
    probabilities: labels agree on at least 99 % of the pixels, Q within 0.05 (measured over
    8 pictures: at least 99.5 %, at most 0.03). At the defaults Q saturates to one-hot; with
    weaker weights most pixels stay unsure, where a wrong message would show."""
    rng = np.random.default_rng(seed)
    if seed == 5:
        image, truth = shapes.render(rng, shapes.ShapesConfig(size=24))
        image, truth = image.astype(np.float64), truth.astype(np.int64) % 3
    else:
        image, truth = regions_picture(rng, 24)
    probabilities = noisy_probabilities(rng, truth, 3, spread=2.0)
    fast = crf.dense_crf(image, probabilities, **options)
    exact = crf.dense_crf(image, probabilities, method="exact", **options)
    assert np.mean(fast.argmax(-1) == exact.argmax(-1)) >= 0.99
    assert np.max(np.abs(fast - exact)) <= 0.05
    if options:
        assert np.mean(exact.max(-1) < 0.9) > 0.3  # a comparison of unsure answers


# --- mean-field inference --------------------------------------------------------------------

def algorithm_one(image, probabilities, iterations, w1, theta_alpha, theta_beta, w2,
                  theta_gamma, normalize):
    """The paper's Algorithm 1 with dense N×N kernel matrices (diagonal 0: j ≠ i)."""
    height, width, classes = probabilities.shape
    rows, cols = np.mgrid[:height, :width]
    position = np.stack([rows.ravel(), cols.ravel()], 1).astype(float)
    colour = 255 * image.reshape(-1, 3)
    d_position = ((position[:, None] - position[None]) ** 2).sum(-1)
    d_colour = ((colour[:, None] - colour[None]) ** 2).sum(-1)
    kernels = [np.exp(-d_position / (2 * theta_alpha ** 2) - d_colour / (2 * theta_beta ** 2)),
               np.exp(-d_position / (2 * theta_gamma ** 2))]
    if normalize:  # divided by the row sum, the pixel itself included
        kernels = [k / k.sum(1, keepdims=True) for k in kernels]
    kernels = [k - np.diag(np.diag(k)) for k in kernels]
    unary = -np.log(probabilities.reshape(-1, classes))
    q = softmax(-unary)
    potts = 1 - np.eye(classes)
    for _ in range(iterations):
        message = w1 * kernels[0] @ q + w2 * kernels[1] @ q
        q = softmax(-unary - message @ potts)
    return q.reshape(probabilities.shape)


@pytest.mark.parametrize("normalize", [True, False])
def test_exact_inference_is_the_papers_algorithm_one(rng, normalize):
    image = rng.uniform(0, 1, (6, 5, 3))
    probabilities = softmax(rng.normal(size=(6, 5, 4)))
    parameters = dict(appearance_weight=2.0, theta_alpha=3.0, theta_beta=50.0,
                      smoothness_weight=1.5, theta_gamma=1.0)
    expected = algorithm_one(image, probabilities, 3, 2.0, 3.0, 50.0, 1.5, 1.0, normalize)
    got = crf.dense_crf(image, probabilities, 3, method="exact", normalize=normalize,
                        **parameters)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", crf.METHODS)
def test_zero_iterations_return_the_input_probabilities(rng, method):
    image = rng.uniform(0, 1, (7, 6, 3))
    probabilities = softmax(rng.normal(size=(7, 6, 3)))
    np.testing.assert_allclose(crf.dense_crf(image, probabilities, 0, method=method),
                               probabilities, atol=1e-10)
    logits = rng.normal(size=(7, 6, 3)) * 3
    np.testing.assert_allclose(crf.dense_crf(image, logits, 0, from_logits=True, method=method),
                               softmax(logits), atol=1e-12)


@pytest.mark.parametrize("method", crf.METHODS)
@pytest.mark.parametrize("iterations", [1, 4])
def test_without_pairwise_weights_the_answer_is_the_unaries_softmax(rng, method, iterations):
    image = rng.uniform(0, 1, (7, 6, 3))
    logits = rng.normal(size=(7, 6, 3)) * 2
    got = crf.dense_crf(image, logits, iterations, from_logits=True, method=method,
                        appearance_weight=0, smoothness_weight=0)
    np.testing.assert_allclose(got, softmax(logits), atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 9), classes=st.integers(1, 4),
       iterations=st.integers(1, 3), seed=st.integers(0, 2 ** 16))
def test_q_is_a_distribution_and_renaming_the_classes_renames_q(height, width, classes,
                                                                 iterations, seed):
    """Potts compatibility treats every pair of labels alike, so permuting the classes of the
    input permutes those of Q (fast and exact alike), and each pixel's Q sums to 1."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 1, (height, width, 3))
    logits = rng.normal(0, 2, (height, width, classes))
    order = rng.permutation(classes)
    for method in crf.METHODS:
        q = crf.dense_crf(image, logits, iterations, from_logits=True, method=method,
                          theta_alpha=3.0)
        assert np.all(q >= 0)
        np.testing.assert_allclose(q.sum(-1), 1, atol=1e-12)
        renamed = crf.dense_crf(image, logits[..., order], iterations, from_logits=True,
                                method=method, theta_alpha=3.0)
        np.testing.assert_allclose(renamed, q[..., order], atol=1e-12)


def test_logits_and_their_probabilities_give_the_same_answer(rng):
    image, _ = regions_picture(rng, 16)
    logits = rng.normal(size=(16, 16, 3)) * 2
    np.testing.assert_allclose(crf.dense_crf(image, logits, 3, from_logits=True),
                               crf.dense_crf(image, softmax(logits), 3), atol=1e-9)


def test_probabilities_passed_as_logits_are_refused_not_flattened():
    """P = (0.9, 0.1) softmaxed again is (0.690, 0.310): the unaries flattened, silently. Such
    scores are refused; logits that merely lie in [0, 1] but do not sum to 1, or one class's
    scores (softmax of anything is 1 there), are still taken."""
    image = np.full((2, 3, 3), 0.5)
    probabilities = np.broadcast_to([0.9, 0.1], (2, 3, 2))
    for method in crf.METHODS:
        with pytest.raises(ValueError, match=r"look like probabilities.*from_logits=False"):
            crf.dense_crf(image, probabilities, 0, from_logits=True, method=method)
        with pytest.raises(ValueError, match=r"look like probabilities.*from_logits=False"):
            crf.crf_labels(image, probabilities, from_logits=True, method=method)
    # Within the losses' tolerance (each sum within 1e-3 of 1) still counts as probabilities.
    nearly = np.broadcast_to([0.9, 0.1009], (2, 3, 2))
    with pytest.raises(ValueError, match="look like probabilities"):
        crf.dense_crf(image, nearly, 0, from_logits=True)
    np.testing.assert_allclose(crf.dense_crf(image, probabilities, 0), probabilities, atol=1e-12)
    logits = np.broadcast_to([0.9, 0.3], (2, 3, 2))
    np.testing.assert_allclose(crf.dense_crf(image, logits, 0, from_logits=True),
                               softmax(logits), atol=1e-12)
    one_class = np.ones((2, 3, 1))
    np.testing.assert_allclose(crf.dense_crf(image, one_class, 2, from_logits=True), one_class)


def test_logits_passed_as_probabilities_are_refused():
    """The other direction: from_logits=False with values outside [0, 1], or with in-range
    values whose sums are not 1."""
    image = np.full((2, 3, 3), 0.5)
    with pytest.raises(ValueError, match=r"outside \[0, 1\] \(-1 to 2\).*from_logits=True"):
        crf.dense_crf(image, np.broadcast_to([2.0, -1.0], (2, 3, 2)))
    with pytest.raises(ValueError, match=r"outside \[0, 1\] \(0\.5 to 3\).*from_logits=True"):
        crf.dense_crf(image, np.broadcast_to([3.0, 0.5], (2, 3, 2)))
    with pytest.raises(ValueError, match=r"sum is 0\.6.*from_logits=True"):
        crf.dense_crf(image, np.broadcast_to([0.3, 0.3], (2, 3, 2)))


def test_the_crf_labels_follow_the_colour_edge():
    """Why DeepLab runs the CRF: its network's scores are noisy and blurred across object
    edges (an upsampled coarse map). Two flat-coloured halves with the edge at column 20; the
    network's boundary sits at column 24 and its scores are noisy. The CRF's labels put the
    boundary back on the colour edge and score a far higher mIoU than the argmax."""
    rng = np.random.default_rng(3)
    size, edge, network_edge = 48, 20, 24
    cols = np.broadcast_to(np.arange(size), (size, size))
    truth = (cols >= edge).astype(np.int64)
    image = np.where((cols >= edge)[..., None], [0.85, 0.7, 0.2], [0.15, 0.25, 0.7])
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)
    ramp = (cols - network_edge + 0.5) / 3.0  # a soft boundary at the wrong place
    logits = np.stack([-ramp, ramp], -1) + rng.normal(0, 2.0, (size, size, 2))
    probabilities = softmax(logits)
    before = probabilities.argmax(-1)
    after = crf.crf_labels(image, probabilities, 10)
    miou_before = scores(confusion_matrix(truth, before, 2)).miou
    miou_after = scores(confusion_matrix(truth, after, 2)).miou
    assert miou_before < 0.85  # measured 0.814
    assert miou_after > 0.99  # measured 1.0
    # Row by row, the CRF's boundary is the colour edge (the network's was 4 columns off).
    assert np.mean(np.all(after[:, :edge] == 0, axis=1) & np.all(after[:, edge:] == 1, axis=1)
                   ) >= 0.95


# --- refusals --------------------------------------------------------------------------------

GOOD_IMAGE = np.full((4, 5, 3), 0.5)
GOOD_PROBABILITIES = np.full((4, 5, 2), 0.5)


@pytest.mark.parametrize("image, probabilities, options, message", [
    (np.zeros((4, 5)), GOOD_PROBABILITIES, {}, r"\(4, 5\)"),
    (np.zeros((4, 5, 4)), GOOD_PROBABILITIES, {}, r"\(4, 5, 4\)"),
    (np.zeros((2, 4, 5, 3)), GOOD_PROBABILITIES, {}, r"\(2, 4, 5, 3\)"),
    (np.zeros((4, 5, 3), np.uint8), GOOD_PROBABILITIES, {}, r"uint8.*image / 255"),
    (np.full((4, 5, 3), 200.0), GOOD_PROBABILITIES, {}, r"largest is 200.*image / 255"),
    (np.full((4, 5, 3), -0.5), GOOD_PROBABILITIES, {}, r"smallest is -0.5"),
    (np.full((4, 5, 3), np.nan), GOOD_PROBABILITIES, {}, r"NaN"),
    (GOOD_IMAGE, np.full((4, 6, 2), 0.5), {}, r"\(4, 6, 2\).*\(4, 5\)"),
    (GOOD_IMAGE, np.full((4, 5), 0.5), {}, r"\(4, 5\)"),
    (GOOD_IMAGE, np.full((4, 5, 2), 1.0), {}, r"sum is 2.*from_logits=True"),
    (GOOD_IMAGE, np.stack([np.full((4, 5), -0.5), np.full((4, 5), 1.5)], -1), {},
     r"outside \[0, 1\] \(-0.5 to 1.5\).*from_logits=True"),
    # Logits above 1 that happen to be non-negative: refused for their range, not only their sum.
    (GOOD_IMAGE, np.stack([np.full((4, 5), 0.0), np.full((4, 5), 1.0 + 1e-4)], -1), {},
     r"outside \[0, 1\] \(0 to 1\).*from_logits=True"),
    # Probabilities with from_logits=True would be softmaxed again: refused.
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"from_logits": True},
     r"look like probabilities.*0\.5 to 0\.5.*from_logits=False"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"iterations": -1}, r"iterations.*-1"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"iterations": 2.5}, r"iterations.*2\.5"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"iterations": True}, r"iterations.*True"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"theta_alpha": 0}, r"theta_alpha.*0"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"theta_beta": -13.0}, r"theta_beta.*-13"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"theta_gamma": float("nan")}, r"theta_gamma.*nan"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"appearance_weight": -1.0}, r"w1.*-1"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"smoothness_weight": "3"}, r"w2.*'3'"),
    (GOOD_IMAGE, GOOD_PROBABILITIES, {"method": "slow"}, r"'slow'"),
])
def test_bad_inputs_are_refused_naming_the_value(image, probabilities, options, message):
    with pytest.raises(ValueError, match=message):
        crf.dense_crf(image, probabilities, **options)
