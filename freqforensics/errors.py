"""User-facing errors: one clear line that names the problem and the fix.

Library code raises `UserError` for anything a user can correct (a bad path, a bad config value, a
work dir of another run). Entry points catch it, print its message on one line and exit with code 2,
so a user never has to read a traceback to learn what to change.
"""

from __future__ import annotations


class UserError(Exception):
  """A problem with the user's input, with the fix in its message (one line)."""

  exit_code: int = 2

  def __init__(self, message: str):
    super().__init__(" ".join(message.split()))
