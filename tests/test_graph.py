"""segcourse.graph on small functional models whose graph can be read off by hand."""

from __future__ import annotations

import keras
import numpy as np

from segcourse import graph


def _ids(tensors):
    return [id(t) for t in tensors]  # KerasTensor's == builds an op; compare identities


class Pair(keras.layers.Layer):
    """A custom layer holding two Dense layers, as segcourse's composite layers do."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = keras.layers.Dense(2, name="first")
        self.second = keras.layers.Dense(2, name="second")

    def call(self, x):
        return self.second(self.first(x))


def test_producer_of_a_layer_output_and_of_an_input():
    x = keras.Input((8, 8, 3), name="x")
    conv = keras.layers.Conv2D(4, 3, name="conv")
    y = conv(x)
    model = keras.Model(x, y)
    assert graph.producer(y) == (conv, 0, 0)
    made_x = graph.producer(x)
    assert made_x.operation is model.layers[0]
    assert isinstance(made_x.operation, keras.layers.InputLayer) and made_x.operation.name == "x"
    assert (made_x.call, made_x.index) == (0, 0)


def test_producer_of_the_second_output_of_an_operation():
    x = keras.Input((4, 4, 6), name="x")
    low, high = keras.ops.split(x, [2], axis=-1)  # an operation, not a layer
    model = keras.Model(x, [low, high])
    made = graph.producer(high)
    assert (made.call, made.index) == (0, 1)
    assert made.operation is graph.producer(low).operation
    assert made.operation in model.operations and made.operation not in model.layers


def test_producer_of_a_tensor_without_history_is_none():
    assert graph.producer(np.zeros(3)) is None
    assert graph.producer(keras.KerasTensor((1, 2))) is None


def test_a_layer_used_twice_has_two_calls():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    dense = keras.layers.Dense(2, name="shared")
    out_a, out_b = dense(a), dense(b)
    keras.Model([a, b], [out_a, out_b])
    first, second = graph.calls(dense)
    assert (_ids(first.inputs), _ids(first.outputs)) == ([id(a)], [id(out_a)])
    assert (_ids(second.inputs), _ids(second.outputs)) == ([id(b)], [id(out_b)])
    assert graph.producer(out_b) == (dense, 1, 0)
    assert dense.output is out_a  # the public property: the first call only


def test_a_multi_input_layer_lists_its_inputs_in_order():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    add = keras.layers.Add(name="add")
    total = add([b, a])
    keras.Model([a, b], total)
    (call,) = graph.calls(add)
    assert (_ids(call.inputs), _ids(call.outputs)) == ([id(b), id(a)], [id(total)])


def test_calls_of_an_input_layer_and_of_a_layer_never_called():
    x = keras.Input((3,), name="x")
    (call,) = graph.calls(graph.producer(x).operation)
    assert (call.inputs, _ids(call.outputs)) == ([], [id(x)])
    assert graph.calls(keras.layers.Dense(2)) == []


def _nested():
    image = keras.Input((None, None, 3), name="image")
    inner = keras.Model(image, keras.layers.Conv2D(4, 3, name="conv")(image), name="inner")
    x = keras.Input((16, 16, 3), name="x")
    y = inner(x)
    return keras.Model(x, Pair(name="pair")(y), name="outer"), inner, x, y


def test_a_nested_model_call_has_the_outer_tensors():
    outer, inner, x, y = _nested()
    (call,) = graph.calls(inner)
    assert (_ids(call.inputs), _ids(call.outputs)) == ([id(x)], [id(y)])
    assert tuple(call.outputs[0].shape) == (None, 14, 14, 4)
    assert tuple(inner.output.shape) == (None, None, None, 4)  # public: the inner tensor
    assert graph.producer(y) == (inner, 0, 0)
    assert [layer.name for layer in outer.layers] == ["x", "inner", "pair"]


def test_sublayers_are_every_layer_inside_recursively():
    outer, *_ = _nested()
    names = [layer.name for layer in graph.sublayers(outer)]
    assert sorted(names) == ["conv", "first", "image", "inner", "pair", "second", "x"]
    assert sorted(layer.name for layer in graph.sublayers(Pair(name="p"))) == ["first", "second"]
    assert graph.sublayers(keras.layers.Dense(2)) == []
