"""The concrete training side, one subpackage per job (docs/design.md):

- trainer/config/     reading and checking a config, building what it names
- trainer/loop/       the Trainer: the epoch loop and the step
- trainer/callbacks/  what runs at the loop's hooks (EMA, SWA, loggers, ...)
- trainer/run/        assembling a job: run folders, resume, train.py's body
- trainer/inference/  test.py's side: evaluation, predictions, export

Importing this package imports nothing else: a run loads only what it uses.
"""
