"""Imported first by the forkserver (see tuneyard.processes.PRELOAD): the
forkserver dies with the process that owns it, even while it is still
importing torch, so a server killed with -9 leaves no forkserver behind."""

from tuneyard.processes import die_with_parent

die_with_parent()
