"""Reading the graph of a Keras functional model: who made a tensor, what a layer was called on,
which layers a layer holds.

Every module of segcourse that walks a graph does it through this one (docs/design.md §3), so
that what Keras does not make public is read in one place. Public Keras API covers a model's
layers and operations (``model.layers``, ``model.operations``) and a plain layer's first call
(``layer.input``, ``layer.output``), but not: the operation that produced a tensor
(:func:`producer`), every call of a layer with the outer tensors even for a nested model, whose
``input`` and ``output`` are its own inner tensors (:func:`calls`), or the layers a custom layer
holds (:func:`sublayers`). Each of those three reads one private attribute and says which;
checked in the sources of Keras 3.5.0 and 3.15.1, whose ``keras/src/ops/node.py`` (``Node``,
``KerasHistory``) is the same file, and run by CI on 3.6.0 and the newest. Imports Keras and
nothing of segcourse.
"""

from __future__ import annotations

from typing import NamedTuple

import keras


class Producer(NamedTuple):
    """Where a symbolic tensor comes from: ``operation``'s call number ``call`` (0 for the first),
    output number ``index`` (in ``keras.tree.flatten`` order)."""

    operation: keras.Operation
    call: int
    index: int


class Call(NamedTuple):
    """One call of an operation on symbolic tensors: its tensor arguments and its outputs, each
    flattened (``keras.tree.flatten`` order; non-tensor arguments left out)."""

    inputs: list
    outputs: list


def producer(tensor) -> Producer | None:
    """The operation call that made ``tensor``; None for a tensor with no recorded history (an
    eager value, or a symbolic tensor made outside any operation).

    Private: ``tensor._keras_history`` (``keras.src.ops.node.KerasHistory``), set by every
    symbolic call (``Input`` included: its producer is the ``InputLayer``). Keras has no public
    accessor for it (``keras.utils.is_keras_tensor`` only says whether a value is symbolic), and
    a layer being built (``compute_output_spec``) has no model to ask. Checked on Keras 3.5.0 to
    3.15.1.
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    return Producer(history.operation, history.node_index, history.tensor_index)


def calls(operation: keras.Operation) -> list[Call]:
    """Every symbolic call of ``operation`` so far, in order (a layer used twice: two).

    Private: ``operation._inbound_nodes``, the list of ``keras.src.ops.node.Node`` (read through
    their public ``input_tensors`` and ``output_tensors``). Public ``operation.input`` and
    ``output`` give the first call only, and for a model are its own inner tensors instead; Keras
    counts no calls publicly. Checked on Keras 3.5.0 to 3.15.1.
    """
    return [Call(list(node.input_tensors), list(node.output_tensors))
            for node in operation._inbound_nodes]


def sublayers(layer: keras.Layer) -> list[keras.Layer]:
    """Every layer inside ``layer``, recursively (sublayers of sublayers, nested models and their
    layers), each once, ``layer`` itself left out.

    Private: ``layer._flatten_layers``, Keras' walk over the layers its attribute tracker found.
    Public ``model.layers`` lists one level of a model only, and a custom layer lists its
    sublayers nowhere. Checked on Keras 3.5.0 to 3.15.1.
    """
    return list(layer._flatten_layers(include_self=False, recursive=True))

