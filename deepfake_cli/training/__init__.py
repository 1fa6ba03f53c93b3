"""Training: data from an extract-faces manifest, the paper's recipe, checkpoints, evaluation."""
