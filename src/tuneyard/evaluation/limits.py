"""Calling a test function under a time limit, inside the evaluation process.

Two mechanisms, chosen per call:

- **SIGALRM** (POSIX, main thread, no interval timer already set): a real-time
  interval timer raises `_TimeLimit` inside the function. The function is
  genuinely stopped, so nothing keeps running. Limits: the exception arrives
  only between Python bytecodes, so a single long C call (a huge regex, a
  numpy operation) finishes first; a function with a bare `except:` that
  swallows BaseException defeats it. `_TimeLimit` is a BaseException so the
  usual `except Exception` in user code does not.
- **A daemon thread** otherwise (evaluation called from a worker thread, or
  on Windows): we wait `timeout_s` and move on, but Python cannot kill a
  thread, so a runaway keeps using a CPU until it returns or the evaluation
  process exits (daemon threads die with it). Callers bound the damage by not
  calling a function again after a few timeouts (`functions.MAX_TIMEOUTS`).

A subprocess per call would be the only hard limit; it costs a process start
per example and cannot carry functions defined in arbitrary files cheaply,
and the evaluation already runs in its own child process that the worker
can kill.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


class _TimeLimit(BaseException):
    """Raised by the SIGALRM handler; a BaseException so `except Exception` lets it pass."""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _alarm_usable() -> bool:
    if not hasattr(signal, "setitimer"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False  # Python delivers signals to the main thread only
    # Someone else's timer or handler is in use: do not take it over.
    return (signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
            and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None))


def _raise_time_limit(signum, frame):
    raise _TimeLimit


def _with_alarm(fn: Callable, args: tuple, timeout_s: float) -> tuple[bool, Any, str | None]:
    previous = signal.signal(signal.SIGALRM, _raise_time_limit)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            value = fn(*args)
        finally:
            # A signal arriving between the return and this line still raises
            # _TimeLimit here, caught below: the call counts as timed out.
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _TimeLimit:
        return False, None, f"timed out after {timeout_s:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure of user code is a result
        return False, None, _describe(exc)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return True, value, None


def _with_thread(fn: Callable, args: tuple, timeout_s: float) -> tuple[bool, Any, str | None]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            box["error"] = exc

    name = getattr(fn, "__name__", "test-function")
    thread = threading.Thread(target=target, name=f"test-function-{name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return False, None, f"timed out after {timeout_s:g} s (left running in a background thread)"
    if "error" in box:
        return False, None, _describe(box["error"])
    return True, box.get("value"), None


def call_with_time_limit(
    fn: Callable, args: tuple, *, timeout_s: float
) -> tuple[bool, Any, str | None]:
    """(True, value, None) or (False, None, why). Never raises for what `fn` does."""
    if timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")
    if _alarm_usable():
        return _with_alarm(fn, args, timeout_s)
    return _with_thread(fn, args, timeout_s)
