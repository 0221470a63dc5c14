"""The grader (docs/design.md §8): runs students' notebooks with hidden checks, in a sandbox,
and writes points, feedback and a class summary. Its process never imports TensorFlow or Keras."""
