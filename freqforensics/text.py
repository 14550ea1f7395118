"""Names from folders and bundles, made safe to show: on a terminal (`for_terminal`) and in markdown (`for_markdown`).

A class folder, a generator folder or a bundle's label names are strings someone else chose. Printed
raw, a newline in one starts a fake `error:` line and an ANSI escape clears the screen; written raw
into a report's markdown, a `|` or a newline breaks the table and `<img onerror=...>` is live HTML.
Every such string goes through one of these two functions where it meets a terminal or a markdown
file; `control_characters` is what preparation refuses in a class name.
"""

from __future__ import annotations

import unicodedata

# Unicode format characters that reorder or hide text (bidirectional overrides and isolates, line and
# paragraph separators): shown escaped like control characters.
_INVISIBLE = frozenset("\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Characters markdown gives a meaning to in a table cell or running text (HTML, tables, links, code, emphasis).
# `>` alone opens no tag, and mid-line no quote: kept, so `p_fake > 0.5` reads as written.
_MARKDOWN = {"&": "&amp;", "<": "&lt;", **{ch: "\\" + ch for ch in "\\|`[]*"}}


def _is_control(ch: str) -> bool:
  return unicodedata.category(ch) == "Cc" or ch in _INVISIBLE


def control_characters(s: str) -> list[str]:
  """The control characters (C0, DEL, C1) and invisible reordering characters in `s`, escaped (`\\n`, `\\x1b`)."""
  return sorted({_escape(ch) for ch in s if _is_control(ch)})


def _escape(ch: str) -> str:
  return ch.encode("unicode_escape").decode("ascii")


def for_terminal(s: object) -> str:
  """`str(s)` with every control or invisible reordering character written as its escape (`\\n`, `\\x1b`,
  `\\u202e`): one line, no terminal sequences, nothing hidden. Plain text is unchanged."""
  text = str(s)
  if not any(_is_control(ch) for ch in text):
    return text
  return "".join(_escape(ch) if _is_control(ch) else ch for ch in text)


def for_markdown(s: object) -> str:
  """`for_terminal(s)` with markdown's and HTML's special characters escaped, safe in a table cell or a
  line of text: no HTML, no table break, no link or code span. Plain names (`A_real`, `progan`) are unchanged."""
  return "".join(_MARKDOWN.get(ch, ch) for ch in for_terminal(s))
