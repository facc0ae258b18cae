"""The shared training machinery: loop, batches, checkpoints, logging. It knows no method by name."""
