"""What every baseline command shares: the config, the prepared data, the results file, subsets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from freqforensics.baselines import inputs
from freqforensics.baselines.results import Results
from freqforensics.data import reader
from freqforensics.errors import UserError


@dataclasses.dataclass
class Context:
  """One command of one baseline on one prepared data set."""

  config: ml_collections.ConfigDict
  workdir: Path
  prepared: reader.PreparedDataset
  results: Results
  progress: bool = True

  @property
  def b(self) -> ml_collections.ConfigDict:
    return self.config.baseline

  @property
  def label_names(self) -> tuple[str, ...]:
    return self.prepared.label_names

  @property
  def num_classes(self) -> int:
    return len(self.prepared.label_names)

  @property
  def n_jobs(self) -> int:
    return inputs.num_jobs(self.config)

  def source(self, split: str):
    return inputs.split_source(self.prepared, split)

  def balanced(self, split: str, per_class: int) -> np.ndarray:
    """Indices of a seeded class-balanced subset of `split` (at most `per_class` per class; 0 = all)."""
    y = inputs.labels(self.prepared, split, batch_size=max(256, self.b.batch_size))
    return inputs.balanced_indices(y, per_class, self.num_classes, self.config.seed)

  def train_subset(self):
    """The training examples every baseline fits on: `baseline.train_per_class` per class."""
    return reader.SubsetSource(self.source("train"), self.balanced("train", self.b.train_per_class))

  def model_info(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
      "baseline": self.b.name,
      "params": params,
      "label_names": list(self.label_names),
      "image_shape": list(self.prepared.image_shape),
      "prepared": str(self.prepared.path),
      **extra,
    }

  def load_model_info(self) -> dict[str, Any]:
    """`model.json` of the saved model; its labels and image shape must match the inputs."""
    path = self.results.model_dir / "model.json"
    if not path.is_file():
      raise UserError(f"no saved {self.b.name} model in {self.results.model_dir}: run the train command first")
    info = json.loads(path.read_text())
    if tuple(info["label_names"]) != self.label_names or tuple(info["image_shape"]) != self.prepared.image_shape:
      raise UserError(
        f"the model in {self.results.model_dir} was trained on labels {info['label_names']} at"
        f" {info['image_shape']}, the data have {list(self.label_names)} at"
        f" {list(self.prepared.image_shape)}: test with the data it was trained on"
      )
    return info

  def save_model_info(self, info: dict[str, Any]) -> None:
    self.results.model_dir.mkdir(parents=True, exist_ok=True)
    (self.results.model_dir / "model.json").write_text(json.dumps(info, indent=2) + "\n")
