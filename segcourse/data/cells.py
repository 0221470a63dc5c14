"""``cells``: synthetic electron-microscopy-like pictures for the biomedical U-Net, generated on
the fly, seeded, offline (in the spirit of the ISBI 2012 EM segmentation challenge that
Ronneberger, Fischer & Brox 2015, "U-Net", §4, trained on).

A picture is a tessellation of touching cells: the Voronoi regions of random, spread-out seeds,
their borders bent by a smooth random warp, separated by thin dark membranes, 1 pixel wide
(3 in about a third of the pictures: ``CellsConfig.membrane``). A few regions are empty
(extracellular space, background). Cell interiors are bright with a random grey level,
speckle and a few small dark vesicles (dark, like membranes, but not borders: context tells
them apart); then blur and noise. Grayscale, as the ISBI data:
images are ``(S, S, 1)``, the input of ``models.build("unet", 2, (S, S, 1), ...)``.

Each picture comes with
- ``mask`` (uint8, ISBI's convention): 1 = cell interior, 0 = membrane and background;
- ``instances`` (int32): 0 = membrane and background, ``1..N`` one id per cell — what the
  weight map of eq. 2 needs (:mod:`segcourse.data.weight_map`).

The guarantee: pixels of two different cells are never 8-adjacent (nor, a fortiori,
4-adjacent); at least one membrane or background pixel lies between them. An id marks one
Voronoi region; a region the membrane cuts through (rare) keeps one id for its parts.

Picture ``i`` of a split is fixed by ``(seed, split, i)``, whatever the count asked.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from segcourse.data.distance import distance_to
from segcourse.data.elastic import random_displacement

SPLITS = ("train", "val", "test")
CLASS_NAMES = ("background", "cell")  # background: membranes and extracellular space
NUM_CLASSES = len(CLASS_NAMES)


def _is_range(value, low, kind=numbers.Real) -> bool:
    return (isinstance(value, tuple) and len(value) == 2
            and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
            and low <= value[0] <= value[1])


@dataclass(frozen=True)
class CellsConfig:
    """How a ``cells`` picture is drawn; lengths in pixels, ranges inclusive."""

    size: int = 128
    cells: tuple[int, int] = (10, 24)          # Voronoi seeds per picture
    membrane: tuple[float, float] = (0.0, 1.5)  # reach beyond the 1-pixel line (≥ 1: 3 px)
    empty: float = 0.1                          # chance that a region is background
    warp: float = 3.0                           # σ of the smooth warp of the borders
    vesicles: tuple[int, int] = (0, 6)          # small dark blobs inside cells
    blur: float = 0.7                           # Gaussian blur σ
    noise: float = 0.04

    def __post_init__(self):
        problems = []
        if not (isinstance(self.size, numbers.Integral) and self.size >= 16):
            problems.append(f"size must be an int of at least 16; got {self.size!r}")
        if not _is_range(self.cells, 1, numbers.Integral):
            problems.append(f"cells must be (low, high) ints with 1 <= low <= high; got "
                            f"{self.cells!r}")
        if not _is_range(self.membrane, 0):
            problems.append(f"membrane must be (low, high) with 0 <= low <= high; got "
                            f"{self.membrane!r}")
        if not _is_range(self.vesicles, 0, numbers.Integral):
            problems.append(f"vesicles must be (low, high) ints with 0 <= low <= high; got "
                            f"{self.vesicles!r}")
        if not 0 <= self.empty < 1:
            problems.append(f"empty is a probability below 1; got {self.empty!r}")
        for name in ("warp", "blur", "noise"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                problems.append(f"{name} must be a number of at least 0; got "
                                f"{getattr(self, name)!r}")
        if problems:
            raise ValueError("CellsConfig: " + "; ".join(problems) + ".")


def _seeds(rng, count, size):
    """``count`` seeds spread out: each at least ``0.6 · size / √count`` from the others where
    a few tries allow."""
    spacing = 0.6 * size / np.sqrt(count)
    seeds = []
    for _ in range(count):
        for _ in range(30):
            candidate = rng.uniform(0, size, 2)
            if all(np.hypot(*(candidate - s)) >= spacing for s in seeds):
                break
        seeds.append(candidate)
    return np.array(seeds)


def _nearest_seed(rows, cols, seeds):
    """The Voronoi region (1..len(seeds)) of every point ``(rows, cols)``."""
    best = np.full(rows.shape, np.inf)
    regions = np.zeros(rows.shape, np.int64)
    for region, (row, col) in enumerate(seeds, start=1):
        distance = (rows - row) ** 2 + (cols - col) ** 2
        closer = distance < best
        best[closer], regions[closer] = distance[closer], region
    return regions


def _borders(regions):
    """Pixels with an 8-neighbour of a *larger* region id: one side of every border, so that
    no two pixels of different regions stay 8-adjacent once these are removed."""
    padded = np.pad(regions, 1, mode="edge")
    height, width = regions.shape
    border = np.zeros(regions.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            border |= padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width] > regions
    return border


def _blur(image, sigma):
    if sigma == 0:
        return image
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    taps /= taps.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)],
                        mode="reflect")
        image = sum(w * np.take(padded, np.arange(i, i + image.shape[axis]), axis=axis)
                    for i, w in enumerate(taps))
    return image


def render(rng: np.random.Generator, config: CellsConfig = CellsConfig()):
    """One picture: ``(image float32 (S, S, 1) in [0, 1], mask uint8 (S, S) of 0/1, instances
    int32 (S, S))``."""
    size = config.size
    count = int(rng.integers(config.cells[0], config.cells[1] + 1))
    seeds = _seeds(rng, count, size)
    rows, cols = np.indices((size, size), dtype=np.float64)
    bend = random_displacement((size, size), rng, grid=4, sigma=config.warp)
    regions = _nearest_seed(rows + bend[..., 0], cols + bend[..., 1], seeds)
    membrane = distance_to(_borders(regions)) <= rng.uniform(*config.membrane)
    empty = np.concatenate([[True], rng.random(count) < config.empty])  # region 0: none
    cell = ~membrane & ~empty[regions]
    ids = np.zeros(count + 1, np.int32)  # region -> instance id, 1..N in region order
    kept = np.unique(regions[cell])
    ids[kept] = np.arange(1, kept.size + 1)
    instances = np.where(cell, ids[regions], 0).astype(np.int32)
    # Intensities: bright cells of their own grey, darker empty space, dark membranes.
    grey = np.concatenate([[0.0], rng.uniform(0.55, 0.9, count)])
    image = np.where(empty[regions], rng.uniform(0.3, 0.45), grey[regions])
    image = image * (1 + 0.08 * rng.normal(size=(size, size)))  # speckle
    for _ in range(rng.integers(config.vesicles[0], config.vesicles[1] + 1)):
        centre, radius = rng.uniform(0, size, 2), rng.uniform(1.0, 2.5)
        vesicle = np.hypot(rows - centre[0], cols - centre[1]) <= radius
        image[vesicle & cell] = rng.uniform(0.15, 0.35)
    image[membrane] = rng.uniform(0.05, 0.25)
    image = _blur(image, config.blur) + rng.normal(0, config.noise, (size, size))
    image = np.clip(image, 0, 1).astype(np.float32)[..., None]
    return image, (instances > 0).astype(np.uint8), instances


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"cells has the splits {', '.join(SPLITS)}; got {split!r}.")


def sample_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
    """The generator that draws picture ``index`` of ``split``: fixed for ever."""
    _check_split(split)
    if not isinstance(index, numbers.Integral) or index < 0:
        raise ValueError(f"cells: a picture index is an int of at least 0; got {index!r}.")
    return np.random.default_rng([seed, SPLITS.index(split), index, 0xCE11])


def load(split="train", count=100, size=128, seed=0, config: CellsConfig | None = None,
         progress=False):
    """``count`` pictures of a split as NumPy: ``(images (N, S, S, 1) float32, masks (N, S, S)
    uint8, instances (N, S, S) int32)``; ``config`` (if given) decides the size."""
    _check_split(split)
    if not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"cells.load: count must be at least 1; got {count!r}.")
    config = config or CellsConfig(size=size)
    side = config.size
    images = np.empty((count, side, side, 1), np.float32)
    masks = np.empty((count, side, side), np.uint8)
    instances = np.empty((count, side, side), np.int32)
    indices = range(count)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"cells {split}", unit="img", leave=False)
    for i in indices:
        images[i], masks[i], instances[i] = render(sample_rng(split, i, seed), config)
    return images, masks, instances


def dataset(split="train", count=100, size=128, batch_size=8, seed=0, shuffle=None,
            config: CellsConfig | None = None, weights=False, progress=False):
    """The split as a batched ``tf.data.Dataset`` of ``(image, mask)``, masks ``(S, S)``
    int32; with ``weights=True``, ``(image, mask, weight)`` where ``weight`` is U-Net eq. 2's
    map (float32 ``(S, S)``, :func:`segcourse.data.weight_map.weight_map` with its defaults),
    the per-pixel ``sample_weight`` that Keras' ``fit`` takes from the third element.
    Training batches are shuffled (seeded) unless ``shuffle=False``."""
    import tensorflow as tf

    from segcourse.data.weight_map import weight_map

    _check_split(split)
    images, masks, instances = load(split, count, size, seed, config, progress)
    parts = (images, masks.astype(np.int32))
    if weights:
        parts += (np.stack([weight_map(picture) for picture in instances]),)
    data = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle if shuffle is not None else split == "train":
        data = data.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
