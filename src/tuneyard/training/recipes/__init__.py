"""One recipe per task: each builds its model, data and Trainer from a JobSpec
and hands them to `loop.fit`. Imported only inside the training process."""
