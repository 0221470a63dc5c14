"""Segmentation models faithful to their papers, behind one registry.

    from segcourse import models
    model = models.build("fcn8s", num_classes=21)
    models.available()   # names, summaries, options
"""

from segcourse.models import deconvnet, deeplab, fcn, plain, pspnet, segnet, unet  # noqa: F401  (importing registers the models)
from segcourse.models.convolutionalize import convolutionalize
from segcourse.models.registry import (
    TrainingRecipe,
    available,
    build,
    check,
    parse_options,
    recipe,
    register_model,
)

__all__ = ["TrainingRecipe", "available", "build", "check", "convolutionalize", "parse_options",
           "recipe", "register_model"]
