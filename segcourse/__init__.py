"""segcourse: a Keras 3 course package for semantic segmentation.

Importing the top-level package stays light (no TensorFlow): the grader and the CLI's fast
paths depend on it. Import the parts you need: ``segcourse.layers``, ``segcourse.labs``, ...
"""

__version__ = "0.1.0"
