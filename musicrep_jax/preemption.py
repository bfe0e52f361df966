"""Stopping a run on SIGTERM (a preemption notice) or SIGINT (Ctrl-C), at a step that every
process of the run agrees on.

One process: the loop stops after the step in flight. Several processes (a pod slice):
the notice goes to JAX's coordination service, whose preemption sync point (the
mechanism Orbax's CheckpointManager uses) makes every process stop at the same step,
max(steps reached when the notice spread) + 1, however far apart the signals arrive;
the training loop asks `reached(step)` after every step.

Either way, a process that received a signal ends itself `grace_s` seconds later if the
run has not stopped by then (a long compilation, a lost peer): the newest complete
checkpoint is what a rerun resumes from.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

import jax

from musicrep_jax import progress

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Sigaction(ctypes.Structure):
  """glibc's struct sigaction (the same on x86-64 and aarch64 Linux)."""
  _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16), ("flags", ctypes.c_int),
              ("restorer", ctypes.c_void_p)]


def _native_handler(signum: int):
  """(the C function handling `signum` now, its sigaction) when native code, not Python,
  installed it: with several processes, the coordination service's SIGTERM listener that
  jax.distributed.initialize installs. None where there is none or it cannot be read."""
  if not sys.platform.startswith("linux"):
    return None
  try:
    current = _Sigaction()
    if _libc().sigaction(signum, None, ctypes.byref(current)) != 0:
      return None
  except (OSError, AttributeError):
    return None
  if current.handler in (None, 0, 1) or signal.getsignal(signum) not in (None, signal.SIG_DFL):
    return None  # default, ignored, or a Python handler
  return ctypes.CFUNCTYPE(None, ctypes.c_int)(current.handler), current


def _libc():
  return ctypes.CDLL(None, use_errno=True)


class Notice:
  """Watches SIGTERM and SIGINT from start() to close()."""

  def __init__(self, grace_s: float):
    self.grace_s = grace_s
    self.signum: int | None = None
    self.several = jax.process_count() > 1
    self._lock = threading.Lock()
    native = _native_handler(signal.SIGTERM) if self.several else None
    self._notifier, self._native_action = native or (None, None)
    self._old: dict = {}
    self._wakeup = None

  @property
  def status(self) -> int:
    """The exit status: 143 after SIGTERM (or a peer's notice), 130 after SIGINT."""
    return 128 + (self.signum or signal.SIGTERM)

  def start(self) -> "Notice":
    if self.several and self._notifier is None:
      # The coordination service's own listener stays in charge of SIGTERM (no grace timer).
      self._old = {signal.SIGINT: signal.signal(signal.SIGINT, self._python_handler)}
    else:
      self._old = {s: signal.signal(s, self._python_handler) for s in SIGNALS}
    # The signal is also written to a pipe that a thread reads: the notice (and the grace
    # timer) start at once, even while the main thread is inside a long XLA call.
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
      previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread: the Python handler alone
      os.close(read_fd)
      os.close(write_fd)
      return self
    self._wakeup = (read_fd, write_fd, previous)
    threading.Thread(target=self._watch, args=(read_fd,), daemon=True, name="stop-signal").start()
    return self

  def close(self) -> None:
    for s, handler in self._old.items():
      signal.signal(s, handler)
    if self._native_action is not None:  # the coordination service's listener again
      _libc().sigaction(signal.SIGTERM, ctypes.byref(self._native_action), None)
    if self._wakeup is not None:
      read_fd, write_fd, previous = self._wakeup
      signal.set_wakeup_fd(previous)
      os.close(write_fd)  # ends the watching thread
      self._wakeup = None

  def _python_handler(self, signum, frame) -> None:
    del frame
    self._received(signum)

  def _watch(self, read_fd: int) -> None:
    try:
      while True:
        data = os.read(read_fd, 64)
        if not data:
          break
        for signum in data:
          if signum in SIGNALS:
            self._received(signum)
    finally:
      os.close(read_fd)

  def _received(self, signum: int) -> None:
    with self._lock:
      if self.signum is not None:
        return
      self.signum = signum
    if self._notifier is not None:
      self._notifier(signal.SIGTERM)  # the coordination service learns of it: all processes agree on a step
    timer = threading.Timer(self.grace_s, self._expire)
    timer.daemon = True
    timer.start()

  def _expire(self) -> None:
    name = signal.Signals(self.signum).name
    progress.log(f"{name}: no checkpoint completed within config.train.preemption_grace_s={self.grace_s:g} s; "
                 "a rerun resumes from the newest complete one", True)
    os._exit(self.status)  # pylint: disable=protected-access

  def reached(self, step: int) -> bool:
    """Whether to save `step` and stop. With several processes every process must ask at
    every step, and all of them get True at the same step."""
    if self.several:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      return multihost_utils.reached_preemption_sync_point(step)
    return self.signum is not None

  def between_epochs(self) -> bool:
    """Whether to stop after an epoch's save: one process stops at once; several stop at
    the sync step that the next epoch's steps reach."""
    return not self.several and self.signum is not None
