"""Cityscapes' label table as data, and the mapping from its label ids to its train ids
(NumPy only).

Cityscapes (Cordts et al., CVPR 2016) annotates its pictures with 34 label ids (0 to 33), kept
in the ``*_labelIds.png`` files, plus a ``license plate`` label of id -1: its polygons are in
the annotation files, but labels of id -1 are left out when the label pictures are drawn, so
no label picture holds it (a plate's pixels keep the label of the vehicle under it). Only 19
classes are evaluated: each has a *train id* 0 to 18, and every other label, the void ones
(unlabeled, ego vehicle, ...) and the rare ones (parking, rail track, guard rail, bridge,
tunnel, polegroup, caravan, trailer), is ignored in evaluation: train id 255. The table is the
official one of the dataset's scripts (``cityscapesscripts/helpers/labels.py``: name, id,
trainId, category, ignoreInEval); there the license plate's train id is -1, here it is mapped
to the ignore label like the other ignored labels (:data:`segcourse.labels.IGNORE_INDEX`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from segcourse.labels import IGNORE_INDEX, check_whole_numbers


class CityscapesLabel(NamedTuple):
    """One row of the official table."""

    name: str
    id: int  # the value in a *_labelIds.png picture (-1: the license plate, in none)
    train_id: int  # 0..18 for an evaluated class, 255 (the official -1 for the plate) if not
    category: str
    ignore_in_eval: bool


_ROWS = (  # name, id, trainId, category, ignoreInEval
    ("unlabeled", 0, 255, "void", True),
    ("ego vehicle", 1, 255, "void", True),
    ("rectification border", 2, 255, "void", True),
    ("out of roi", 3, 255, "void", True),
    ("static", 4, 255, "void", True),
    ("dynamic", 5, 255, "void", True),
    ("ground", 6, 255, "void", True),
    ("road", 7, 0, "flat", False),
    ("sidewalk", 8, 1, "flat", False),
    ("parking", 9, 255, "flat", True),
    ("rail track", 10, 255, "flat", True),
    ("building", 11, 2, "construction", False),
    ("wall", 12, 3, "construction", False),
    ("fence", 13, 4, "construction", False),
    ("guard rail", 14, 255, "construction", True),
    ("bridge", 15, 255, "construction", True),
    ("tunnel", 16, 255, "construction", True),
    ("pole", 17, 5, "object", False),
    ("polegroup", 18, 255, "object", True),
    ("traffic light", 19, 6, "object", False),
    ("traffic sign", 20, 7, "object", False),
    ("vegetation", 21, 8, "nature", False),
    ("terrain", 22, 9, "nature", False),
    ("sky", 23, 10, "sky", False),
    ("person", 24, 11, "human", False),
    ("rider", 25, 12, "human", False),
    ("car", 26, 13, "vehicle", False),
    ("truck", 27, 14, "vehicle", False),
    ("bus", 28, 15, "vehicle", False),
    ("caravan", 29, 255, "vehicle", True),
    ("trailer", 30, 255, "vehicle", True),
    ("train", 31, 16, "vehicle", False),
    ("motorcycle", 32, 17, "vehicle", False),
    ("bicycle", 33, 18, "vehicle", False),
    ("license plate", -1, -1, "vehicle", True),
)

#: The official table, in its order (ids 0..33, then the license plate, id -1).
LABELS = tuple(CityscapesLabel(*row) for row in _ROWS)
#: The 34 label ids a ``*_labelIds.png`` picture may hold.
LABEL_IDS = tuple(label.id for label in LABELS if label.id >= 0)
#: The 19 evaluated classes, by train id (0: road ... 18: bicycle).
TRAIN_CLASSES = tuple(label.name for label in sorted(
    (label for label in LABELS if not label.ignore_in_eval), key=lambda label: label.train_id))
NUM_TRAIN_CLASSES = len(TRAIN_CLASSES)


def train_id_table() -> np.ndarray:
    """``table[id]`` is the train id of label id ``id`` (0..33): ``(34,)`` int64, 0..18 or 255."""
    table = np.full(len(LABEL_IDS), IGNORE_INDEX, np.int64)
    for label in LABELS:
        if label.id >= 0 and not label.ignore_in_eval:
            table[label.id] = label.train_id
    return table


def to_train_ids(label_ids) -> np.ndarray:
    """Train ids (int64 array of the same shape: 0..18, or 255 for every label ignored in
    evaluation) of Cityscapes label ids (the values of a ``*_labelIds.png``: 0..33, and -1, the
    license plate, which maps to 255 too). Any other value is a ``ValueError`` naming it: a
    picture of train ids or colours, not label ids, or another dataset's labels."""
    ids = check_whole_numbers(label_ids, "to_train_ids: Cityscapes label ids")
    unknown = (ids < -1) | (ids >= len(LABEL_IDS))
    if unknown.any():
        values = np.unique(ids[unknown])
        raise ValueError(
            f"to_train_ids: {int(unknown.sum())} pixel(s) hold values {values[:8].tolist()} that "
            f"are not Cityscapes label ids (0..{len(LABEL_IDS) - 1}, or -1 for the license "
            "plate). Is this a *_labelIds.png picture? A *_labelTrainIds.png already holds train "
            "ids (0..18 and 255), a *_color.png colours.")
    table = train_id_table()
    return np.where(ids < 0, IGNORE_INDEX, table[np.maximum(ids, 0)])
