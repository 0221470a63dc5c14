import numpy as np
import pytest

from segcourse.data import cityscapes
from segcourse.labels import IGNORE_INDEX


def test_the_table_holds_34_ids_and_the_license_plate():
    assert tuple(range(34)) == cityscapes.LABEL_IDS
    assert len(cityscapes.LABELS) == 35
    plate = [label for label in cityscapes.LABELS if label.name == "license plate"]
    assert len(plate) == 1 and plate[0].id == -1 and plate[0].ignore_in_eval


def test_19_classes_are_evaluated_in_train_id_order():
    assert cityscapes.NUM_TRAIN_CLASSES == 19
    assert cityscapes.TRAIN_CLASSES[0] == "road" and cityscapes.TRAIN_CLASSES[18] == "bicycle"
    evaluated = [label for label in cityscapes.LABELS if not label.ignore_in_eval]
    assert sorted(label.train_id for label in evaluated) == list(range(19))
    ignored = [label for label in cityscapes.LABELS if label.ignore_in_eval and label.id >= 0]
    assert {label.train_id for label in ignored} == {IGNORE_INDEX}


@pytest.mark.parametrize("label_id, train_id", [(7, 0), (8, 1), (26, 13), (33, 18), (24, 11),
                                                (23, 10), (9, 255), (29, 255), (-1, 255)])
def test_known_ids(label_id, train_id):
    assert cityscapes.to_train_ids(np.array([label_id]))[0] == train_id


def test_ids_0_to_6_are_void_and_ignored():
    assert cityscapes.to_train_ids(np.arange(7)).tolist() == [IGNORE_INDEX] * 7
    assert {label.category for label in cityscapes.LABELS[:7]} == {"void"}


def test_keeps_the_shape_and_takes_uint8_pictures():
    picture = np.array([[7, 26], [0, 33]], np.uint8)
    got = cityscapes.to_train_ids(picture)
    assert got.shape == (2, 2) and got.tolist() == [[0, 13], [255, 18]]
    assert np.array_equal(cityscapes.to_train_ids(np.arange(34)), cityscapes.train_id_table())


@pytest.mark.parametrize("bad", [34, 255, -2, 100])
def test_refuses_values_that_are_no_label_id(bad):
    with pytest.raises(ValueError, match=r"not Cityscapes label ids.*labelIds"):
        cityscapes.to_train_ids(np.array([[7, bad]]))


def test_refuses_fractional_values():
    with pytest.raises(ValueError, match="whole class numbers"):
        cityscapes.to_train_ids(np.array([7.5]))
