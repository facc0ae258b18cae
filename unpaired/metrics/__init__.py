"""Evaluation measures; they talk to methods only through translators and checkpoints."""
