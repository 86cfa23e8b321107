"""The training loop: the Trainer (epochs, the step, validation), the epoch's
running statistics and how batches are iterated."""
