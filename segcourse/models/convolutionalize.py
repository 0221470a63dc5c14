"""Convolutionalization: a classifier's fully connected head as convolutions (FCN §3.1).

"Fully connected layers can also be viewed as convolutions with kernels that cover their entire
input regions" (Long, Shelhamer & Darrell, CVPR 2015, §3.1, Fig. 2): the first ``Dense`` after a
``Flatten`` of an ``h × w × c`` map becomes an ``h × w`` convolution with as many filters as units
(VGG16's fc1 → a 7×7×512 → 4096 convolution), each later ``Dense`` a 1×1 convolution. The
weights are the same numbers, reshaped; on the classifier's input size the outputs are the
same, and on a larger image the network slides and yields a map of class scores.
"""

from __future__ import annotations

import keras
from keras import layers

from segcourse import graph
from segcourse.models.backbones import dense_to_conv_kernel

_KEPT = (layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D, layers.Dropout,
         layers.Activation, layers.BatchNormalization, layers.ReLU, layers.ZeroPadding2D)


def _chain(model):
    """The model's layers in order, if it is a single chain (no branches); else ValueError."""
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in chain:
        if len(graph.calls(layer)) > 1 or isinstance(layer.input, (list, tuple)):
            raise ValueError(f"convolutionalize handles single-chain classifiers (like VGG16); "
                             f"layer {layer.name!r} joins or is shared by several branches.")
    return chain


def _clone(layer):
    return layer.__class__.from_config(layer.get_config())


def convolutionalize(classifier: keras.Model, input_shape=(None, None, 3)) -> keras.Model:
    """A fully convolutional copy of ``classifier`` (weights copied, the original untouched).

    Its output is ``(batch, rows, cols, classes)``: ``(1, 1)`` on the classifier's own input
    size, more on a larger input.
    """
    inputs = keras.Input(input_shape, name=classifier.inputs[0].name.split(":")[0])
    x, spatial, transfers = inputs, None, []
    for layer in _chain(classifier):
        if isinstance(layer, layers.Flatten):
            spatial = tuple(layer.input.shape[1:3])
            if None in spatial:
                raise ValueError("convolutionalize needs the classifier's map size before "
                                 f"Flatten; {layer.name!r} sees {layer.input.shape}.")
            continue
        if isinstance(layer, layers.Dense):
            if spatial is None:
                raise ValueError(f"Dense layer {layer.name!r} comes before any Flatten; "
                                 "convolutionalize expects conv layers, Flatten, then Dense.")
            conv = layers.Conv2D(layer.units, spatial, activation=layer.activation,
                                 use_bias=layer.use_bias, name=layer.name)
            x = conv(x)
            kernel, *bias = layer.get_weights()
            transfers.append((conv, [dense_to_conv_kernel(kernel, spatial), *bias]))
            spatial = (1, 1)
            continue
        if not isinstance(layer, _KEPT):
            raise ValueError(f"convolutionalize does not know how to carry layer {layer.name!r} "
                             f"({type(layer).__name__}) into a fully convolutional network.")
        copy = _clone(layer)
        x = copy(x)
        transfers.append((copy, layer.get_weights()))
    for target, weights in transfers:
        target.set_weights(weights)
    return keras.Model(inputs, x, name=f"{classifier.name}_fully_convolutional")
