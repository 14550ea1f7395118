"""From a config to the sources a run reads: class-balanced few-sample subsets of the training split."""

from __future__ import annotations

import numpy as np
import pytest

from freqforensics import train
from freqforensics.data import loading
from freqforensics.errors import UserError


def test_train_subset_is_class_balanced_reproducible_and_trains(config, tmp_path):

  prepared = loading.prepare_from_config(config, progress=False)
  full, tag = loading.train_subset(prepared, 1.0, seed=0)
  assert tag == "" and len(full) == prepared.num_examples["train"]
  per_class = {name: len(prepared.class_range("train", k)) for k, name in enumerate(prepared.label_names)}
  for subset, want in ((0.25, {n: round(0.25 * c) for n, c in per_class.items()}), (3.0, dict.fromkeys(per_class, 3))):
    part, tag = loading.train_subset(prepared, subset, seed=1)
    again, _ = loading.train_subset(prepared, subset, seed=1)
    other, _ = loading.train_subset(prepared, subset, seed=2)
    labels = [int(part[i]["label"]) for i in range(len(part))]
    assert {n: labels.count(k) for k, n in enumerate(prepared.label_names)} == want
    assert list(part.indices) == list(again.indices) and list(part.indices) != list(other.indices)
    assert tag == f"_subset{subset}_seed1"
    batch = part.read_batch([0, len(part) - 1])
    np.testing.assert_array_equal(batch["image"][1], full[int(part.indices[-1])]["image"])
  with pytest.raises(UserError, match="train_subset=2.5"):
    loading.train_subset(prepared, 2.5, seed=0)
  config.data.train_subset = 0.5
  metrics = train.train_and_evaluate(config, tmp_path / "wd")
  assert (prepared.path / f"stats_{config.features}_subset0.5_seed{config.seed}.npz").is_file()
  assert sum(map(sum, metrics["confusion_matrix"])) == prepared.num_examples["test"]
