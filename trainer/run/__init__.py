"""Assembling a job: train.py's body (training.py), run folders, resume and
--resume auto, the batch-size trial, the model summary, compile and the LR finder."""
