"""Joint augmentation: the same geometry on the image and its mask.

The image is interpolated bilinearly; the mask only ever by nearest neighbour, so its values
stay class numbers. Pixels that a transformation brings in from outside the picture are
``ignore_index`` in the mask (and black in the image), so the loss skips them.
"""

from __future__ import annotations

from dataclasses import dataclass

from segcourse.labels import IGNORE_INDEX


def resize_pair(image, mask, size):
    """``image (H, W, 3)`` bilinear and ``mask (H, W)`` nearest, both to ``size = (h, w)``."""
    import tensorflow as tf  # TensorFlow-only: runs inside tf.data's map

    image = tf.image.resize(image, size, method="bilinear")
    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
    return image, tf.cast(mask, tf.int32)


def _affine(image, mask, transform, ignore_index):
    """Apply one projective ``transform`` (8 numbers, output → input) to both."""
    from keras import ops

    image = ops.image.affine_transform(image[None], transform[None], interpolation="bilinear",
                                       fill_mode="constant", fill_value=0.0)[0]
    mask = ops.image.affine_transform(ops.cast(mask, "float32")[None, :, :, None],
                                      transform[None], interpolation="nearest",
                                      fill_mode="constant", fill_value=float(ignore_index))
    return image, ops.cast(mask[0, :, :, 0], "int32")


@dataclass(frozen=True)
class JointAugment:
    """Random horizontal flip, scale, rotation and translation, applied identically to an
    ``(image, mask)`` pair; use as ``dataset.map(JointAugment())`` before batching."""

    flip: bool = True
    scale: tuple[float, float] = (0.8, 1.25)
    degrees: float = 15.0
    shift: float = 0.1  # of the side
    ignore_index: int = IGNORE_INDEX

    def __call__(self, image, mask):
        import math

        import tensorflow as tf

        height = tf.cast(tf.shape(image)[0], tf.float32)
        width = tf.cast(tf.shape(image)[1], tf.float32)
        scale = tf.random.uniform((), *self.scale)
        angle = tf.random.uniform((), -self.degrees, self.degrees) * math.pi / 180
        flip = tf.cast(tf.random.uniform(()) < 0.5, tf.float32) if self.flip else 0.0
        mirror = 1.0 - 2.0 * flip
        shift_x = tf.random.uniform((), -self.shift, self.shift) * width
        shift_y = tf.random.uniform((), -self.shift, self.shift) * height
        # Output pixel (x, y) samples the input at centre + R(-angle) (p - centre) / scale.
        cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
        cx, cy = (width - 1) / 2, (height - 1) / 2  # the centre, in pixel coordinates
        a0, a1 = mirror * cos, sin
        b0, b1 = -mirror * sin, cos
        transform = tf.stack([
            a0, a1, cx - a0 * cx - a1 * cy + shift_x,
            b0, b1, cy - b0 * cx - b1 * cy + shift_y,
            0.0, 0.0])
        return _affine(image, mask, transform, self.ignore_index)
