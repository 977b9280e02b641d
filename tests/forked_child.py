"""A module for tests/test_processes.py to run with `spawn_module`:
`forked_child OUT CODE` writes its pid, process group and $X_TEST to OUT,
prints a line (to the log), then exits with CODE, or sleeps when CODE is `sleep`."""

import os
import sys
import time

if __name__ == "__main__":
    out, code = sys.argv[1], sys.argv[2]
    with open(out + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()} {os.getpgid(0)} {os.environ.get('X_TEST')}")
    os.rename(out + ".tmp", out)
    print("hello from the forked child", flush=True)
    if code == "sleep":
        time.sleep(600)
    sys.exit(int(code))
