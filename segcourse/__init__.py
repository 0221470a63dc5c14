"""segcourse: a Keras 3 course package for semantic segmentation.

Importing the top-level package stays light (no TensorFlow): the grader and the CLI's fast
paths depend on it. Import the parts you need: ``segcourse.layers``, ``segcourse.labs``, ...
"""

__version__ = "0.1.0"


def load_model(path, compile: bool = True):
    """The model in a ``.keras`` file saved from segcourse, in any process.

    ``keras.saving.load_model`` finds segcourse's layers (``MaxUnpooling2D``, ``Resize``, ...),
    losses and metrics only once their modules are imported, and (Keras 3.9 and later) fails in
    a fresh process without them; this imports them (registering each with Keras), then loads.
    A path that is missing or not a Keras archive gives a ``ValueError`` that says so. For a run
    folder of ``segcourse train``, use :func:`segcourse.runs.open_run`.

        model = segcourse.load_model("runs/unet-shapes-.../model.keras")
    """
    from segcourse.runs import load_keras_file  # Keras is imported here, not at `import segcourse`

    return load_keras_file(path, compile=compile)
