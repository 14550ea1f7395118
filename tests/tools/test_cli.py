"""The command-line guard's hooks: library noise after a full disk is dropped, everything else printed."""

from __future__ import annotations

import sys
import threading
import types

from freqforensics.tools import cli


def test_a_closed_event_loop_is_silent_and_every_other_exception_is_printed():
  seen = []
  excepthook, unraisablehook = cli._quiet_closed_loop(
    lambda t, e, tb: seen.append(("except", str(e))), lambda u: seen.append(("unraisable", str(u.exc_value)))
  )
  closed = RuntimeError("Event loop is closed")
  excepthook(RuntimeError, closed, None)
  unraisablehook(types.SimpleNamespace(exc_value=closed))
  assert seen == []  # what tensorstore's threads print through both hooks once orbax closed its loop
  excepthook(RuntimeError, RuntimeError("a real bug"), None)
  unraisablehook(types.SimpleNamespace(exc_value=ValueError("Event loop is closed")))
  assert seen == [("except", "a real bug"), ("unraisable", "Event loop is closed")]


def test_the_guard_installs_them_when_a_command_runs(monkeypatch):
  monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
  monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
  monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)  # the guard sets this one too
  hooks = []
  cli.guarded(lambda argv: hooks.append((sys.excepthook, sys.unraisablehook)))(["cmd"])
  assert hooks[0][0] is not sys.__excepthook__ and hooks[0][1] is not sys.__unraisablehook__
