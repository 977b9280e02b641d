"""Workers: claim pending training jobs and run each in its own child process.

`claim` (atomic claim and heartbeat), `loop` (the worker: supervise a child,
cancel, timeout, retry after a crash), `child` (what runs inside the child:
prepare data, train, publish checkpoints to the store and the DB).
"""
