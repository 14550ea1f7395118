"""Fresh output folders, and outputs that are inputs or a user's files."""

from __future__ import annotations

import pytest

from freqforensics.errors import UserError
from freqforensics.files import figure_marks, output_paths


def test_fresh_dirs_never_repeat(tmp_path):
  made = {output_paths.fresh_dir(tmp_path, "run") for _ in range(5)}
  assert len(made) == 5 and all(p.is_dir() and p.name.startswith("run_") for p in made)
  (tmp_path / "file").write_text("x")
  with pytest.raises(UserError, match="is a file"):
    output_paths.fresh_dir(tmp_path / "file")


def test_outputs_that_are_inputs_or_foreign_files_are_refused(tmp_path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig = plt.figure()
  ours = figure_marks.save_figure(fig, tmp_path / "ours.png")
  theirs = tmp_path / "theirs.png"
  fig.savefig(theirs, metadata={"Software": "another program"})
  plt.close(fig)
  assert figure_marks.is_our_figure(ours) and not figure_marks.is_our_figure(theirs)
  assert output_paths.check_new_output(ours, overwrite=True) == ours
  for path, overwrite, needle in (
    (ours, False, "exists"),
    (theirs, True, "not written by freqforensics"),
    (tmp_path / "x.png", True, "also an input"),
  ):
    with pytest.raises(UserError, match=needle):
      output_paths.check_new_output(path, overwrite=overwrite, inputs=[tmp_path / "x.png"])
  (tmp_path / "data" / "A").mkdir(parents=True)
  with pytest.raises(UserError, match="overlap"):
    output_paths.check_separate(tmp_path / "data" / "A" / "out", [tmp_path / "data"])
