"""Training: the loss of one batch (step.py), the loop with validation, checkpoints and
resume (trainer.py), and multi-process data parallelism (distributed.py)."""
