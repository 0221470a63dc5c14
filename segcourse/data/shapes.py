"""``shapes``: the embedded default dataset, generated on the fly, seeded, offline.

A pixel's class is the *shape* of the object it belongs to — disc, square, triangle, ring or
cross — never its colour or texture: every object gets a random colour and a random texture
(flat, stripes or speckle), the background is a random gradient with noise and clutter strokes,
objects overlap and occlude one another, and their size ranges from small to large. A pixel
cannot be classified from its neighbourhood alone (the inside of a disc looks like the inside
of a square): the network must see the object's outline, so receptive field and skip
connections matter here as they do on real data.

Splits are fixed: image ``i`` of a split is always the same picture, whatever the count asked
(its seed is ``(seed, split, i)``).

Two options, off by default (and then every picture is the same as without them): a class made
rare on purpose (``ShapesConfig(shape_frequencies=...)``, for the losses of imbalanced data), and
an instance map beside each class mask (``render(..., instances=True)``, ``load(...,
instances=True)``), numbering the objects of a picture 1, 2, ... in the order drawn, two discs
two numbers; a pixel's number is that of the object the class mask shows there (the one drawn
last), 0 on the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ("background", "disc", "square", "triangle", "ring", "cross")
NUM_CLASSES = len(CLASS_NAMES)
SPLITS = ("train", "val", "test")
TEXTURES = ("flat", "stripes", "speckle")


@dataclass(frozen=True)
class ShapesConfig:
    """How a ``shapes`` picture is drawn; sizes are fractions of the image side."""

    size: int = 64
    objects: tuple[int, int] = (1, 3)         # objects per image, inclusive
    radius: tuple[float, float] = (0.2, 0.38)  # object radius range
    clutter_strokes: tuple[int, int] = (0, 2)
    noise: float = 0.03
    texture_strength: float = 0.2
    min_contrast: float = 0.35  # least RGB distance between an object and the background
    max_occlusion: float = 0.3  # the most of an object's area the later ones may cover
    placement_tries: int = 20
    # How often each kind is drawn, relative to the others, in the order of CLASS_NAMES[1:]
    # (disc, square, triangle, ring, cross); None: all alike. Pixel shares follow, scaled by each
    # shape's area: (1, 1, 1, 1, 0.1) makes crosses about a tenth as common as each other shape.
    shape_frequencies: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.shape_frequencies is None:
            return
        kinds = CLASS_NAMES[1:]
        try:
            odds = tuple(float(f) for f in self.shape_frequencies)
        except (TypeError, ValueError):
            odds = ()
        if len(odds) != len(kinds) or not all(0 <= f < np.inf for f in odds) or sum(odds) == 0:
            raise ValueError(
                f"ShapesConfig: shape_frequencies gives each shape's relative frequency, "
                f"{len(kinds)} numbers >= 0 (not all 0) for {', '.join(kinds)}; got "
                f"{self.shape_frequencies!r}. Example: (1, 1, 1, 1, 0.1) makes crosses rare.")
        object.__setattr__(self, "shape_frequencies", odds)

    def _draw_label(self, rng) -> int:
        if self.shape_frequencies is None:
            return int(rng.integers(1, NUM_CLASSES))
        odds = np.asarray(self.shape_frequencies)
        return 1 + int(rng.choice(len(odds), p=odds / odds.sum()))


def _inside(kind: str, u, v):
    """Implicit shapes in the object's own rotated, unit-radius coordinates."""
    radius = np.hypot(u, v)
    if kind == "disc":
        return radius <= 1.0
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if kind == "triangle":  # equilateral, inscribed in the unit circle
        angles = np.deg2rad([270.0, 30.0, 150.0])
        return np.all([u * np.cos(a) + v * np.sin(a) <= 0.5 for a in angles], axis=0)
    if kind == "ring":
        return (radius <= 1.0) & (radius >= 0.5)
    if kind == "cross":
        arm_u, arm_v = np.abs(u) <= 0.35, np.abs(v) <= 0.35
        return (arm_u & (np.abs(v) <= 1.0)) | (arm_v & (np.abs(u) <= 1.0))
    raise ValueError(f"unknown shape {kind!r}")


def _texture(rng, kind, rows, cols, size, strength):
    if kind == "flat":
        return np.ones((size, size))
    if kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 9)
        phase = (rows * np.sin(angle) + cols * np.cos(angle)) * 2 * np.pi / period
        return 1.0 + strength * np.sin(phase)
    return 1.0 + strength * rng.uniform(-1, 1, (size, size))


def _visible_colour(rng, behind, min_contrast):
    """A random colour at least ``min_contrast`` (RGB distance) from the mean colour behind
    the object: random, but never camouflaged."""
    for _ in range(100):
        colour = rng.uniform(0, 1, 3)
        if np.linalg.norm(colour - behind) >= min_contrast:
            return colour
    return 1.0 - np.round(behind)


def _background(rng, rows, cols, size):
    low, high = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (rows * np.sin(angle) + cols * np.cos(angle)) / (size * np.sqrt(2)) + 0.5
    return low + (high - low) * ramp[..., None]


def _stroke(rng, rows, cols, size):
    """A thin straight stroke across the image: background clutter, not an object."""
    angle, offset = rng.uniform(0, np.pi), rng.uniform(0.2, 0.8) * size
    distance = np.abs((rows - offset) * np.cos(angle) - (cols - offset) * np.sin(angle))
    return distance <= rng.uniform(0.5, 1.5)


def _place(rng, kind, rows, cols, config, owner, areas):
    """The pixels of a new object of ``kind``, placed so that it hides at most
    ``max_occlusion`` of any earlier object (occlusion, but never a vanished shape); ``None``
    when no such place turned up."""
    size = config.size
    for _ in range(config.placement_tries):
        radius = rng.uniform(*config.radius) * size
        centre = rng.uniform(0.1, 0.9, 2) * size
        angle = rng.uniform(0, 2 * np.pi)
        dy, dx = (rows - centre[0]) / radius, (cols - centre[1]) / radius
        u, v = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
        inside = _inside(kind, u, v)
        if not inside.any():
            continue
        visible = np.bincount(owner[~inside & (owner >= 0)], minlength=len(areas))
        if np.all(visible >= (1 - config.max_occlusion) * np.asarray(areas)):
            return inside
    return None


def render(rng: np.random.Generator, config: ShapesConfig = ShapesConfig(),
           instances: bool = False):
    """One picture: ``(image float32 (S, S, 3) in [0, 1], mask uint8 (S, S))``, and with
    ``instances=True`` its instance map, uint8 (S, S): 0 on the background, object k (1, 2, ...
    in the order drawn) where the mask shows it."""
    if instances:
        _check_instance_count(config)
    size = config.size
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    image = _background(rng, rows, cols, size)
    for _ in range(rng.integers(config.clutter_strokes[0], config.clutter_strokes[1] + 1)):
        image[_stroke(rng, rows, cols, size)] = rng.uniform(0, 1, 3)
    mask = np.zeros((size, size), np.uint8)
    owner = np.full((size, size), -1)  # which object each pixel shows
    areas = []
    for _ in range(rng.integers(config.objects[0], config.objects[1] + 1)):
        label = config._draw_label(rng)
        inside = _place(rng, CLASS_NAMES[label], rows, cols, config, owner, areas)
        if inside is None:
            continue
        # Numbered by objects placed, not by draws: owner must index areas in _place.
        owner[inside] = len(areas)
        areas.append(int(inside.sum()))
        kind = TEXTURES[rng.integers(len(TEXTURES))]
        texture = _texture(rng, kind, rows, cols, size, config.texture_strength)
        colour = _visible_colour(rng, image[inside].mean(axis=0), config.min_contrast)
        image[inside] = colour * texture[inside][:, None]
        mask[inside] = label  # later objects occlude earlier ones
    image += rng.normal(0, config.noise, image.shape)
    image = np.clip(image, 0, 1).astype(np.float32)
    return (image, mask, (owner + 1).astype(np.uint8)) if instances else (image, mask)


def _check_instance_count(config):
    if config.objects[1] > 255:
        raise ValueError(f"shapes: instance maps are uint8, so at most 255 objects per picture; "
                         f"the config allows {config.objects[1]}. Lower ShapesConfig.objects.")


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"shapes has the splits {', '.join(SPLITS)}; got {split!r}.")


def sample_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
    """The generator that draws picture ``index`` of ``split``: fixed for ever."""
    _check_split(split)
    return np.random.default_rng([seed, SPLITS.index(split), index])


def load(split="train", count=1000, size=64, seed=0, config: ShapesConfig | None = None,
         progress=False, instances=False):
    """``count`` pictures of a split as NumPy: ``(images (N, S, S, 3) float32, masks (N, S, S)
    uint8)``, and with ``instances=True`` their instance maps ``(N, S, S)`` uint8 (see
    :func:`render`)."""
    _check_split(split)
    if count < 1:
        raise ValueError(f"shapes.load: count must be at least 1; got {count}.")
    config = config or ShapesConfig(size=size)
    if instances:
        _check_instance_count(config)
    images = np.empty((count, config.size, config.size, 3), np.float32)
    masks = np.empty((count, config.size, config.size), np.uint8)
    ids = np.empty_like(masks) if instances else None
    indices = range(count)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"shapes {split}", unit="img", leave=False)
    for i in indices:
        picture = render(sample_rng(split, i, seed), config, instances)
        images[i], masks[i] = picture[:2]
        if instances:
            ids[i] = picture[2]
    return (images, masks, ids) if instances else (images, masks)


def _fresh_batches(split, count, batch_size, seed, config):
    """A generator function: its ``n``-th call yields pictures ``n * count ... (n + 1) * count
    - 1`` of the split in batches — new pictures every epoch, the same ones on every run."""
    calls = iter(range(10**9))

    def generate():
        start = next(calls) * count
        for first in range(start, start + count, batch_size):
            indices = range(first, min(first + batch_size, start + count))
            pairs = [render(sample_rng(split, i, seed), config) for i in indices]
            yield np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]).astype(np.int32)

    return generate


def dataset(split="train", count=1000, size=64, batch_size=16, seed=0, shuffle=None,
            config: ShapesConfig | None = None, progress=False, fresh_each_epoch=False):
    """The split as a batched ``tf.data.Dataset`` of ``(image, mask)``; masks are
    ``(S, S)`` int32. Training batches are shuffled (seeded) unless ``shuffle=False``.

    ``fresh_each_epoch=True`` draws ``count`` *new* pictures for every epoch (epoch ``e`` sees
    pictures ``e * count`` onwards), drawn while the previous batch trains: a procedural
    dataset is infinite, so a model cannot memorize it.
    """
    import tensorflow as tf

    _check_split(split)
    config = config or ShapesConfig(size=size)
    if fresh_each_epoch:
        side = config.size
        data = tf.data.Dataset.from_generator(
            _fresh_batches(split, count, batch_size, seed, config),
            output_signature=(tf.TensorSpec((None, side, side, 3), tf.float32),
                              tf.TensorSpec((None, side, side), tf.int32)))
        steps = -(-count // batch_size)
        return data.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)
    images, masks = load(split, count, size, seed, config, progress)
    data = tf.data.Dataset.from_tensor_slices((images, masks.astype(np.int32)))
    if shuffle if shuffle is not None else split == "train":
        data = data.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
