"""kNN and Eigenfaces: grid accuracies equal scikit-learn on independently computed features;
train / save / load / test round trips; interrupted grid searches resume; safe model files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import baseline_config, write_fingerprinted_folders
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC

from freqforensics.baselines import commands as brun
from freqforensics.baselines import eigenfaces, inputs, knn, results
from freqforensics.errors import UserError


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  root = tmp_path_factory.mktemp("baselines")
  return write_fingerprinted_folders(root / "src", 24, size=16), root


def _config(folders, name: str, **baseline):
  src, root = folders
  return baseline_config(src, root / "data", name, **baseline)


def _pixels(prepared_path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Pixel features x / 127.5 - 1 read with tfds' own reader (independent of the baselines' reader)."""
  ds = tfds.builder_from_directory(str(prepared_path)).as_data_source(split)
  x = np.stack([np.asarray(ds[i]["image"]) for i in range(len(ds))]).astype(np.float32)
  y = np.array([int(ds[i]["label"]) for i in range(len(ds))])
  return (x / np.float32(127.5) - np.float32(1.0)).reshape(len(x), -1), y


def test_knn_grid_train_test_match_scikit_learn(folders, tmp_path):
  c = _config(folders, "knn", **{"knn.grid": (1, 3, 5, 9, 17, 33)})
  grid = brun.run(c, tmp_path, "grid_search")
  path = json.loads((tmp_path / "knn.json").read_text())["settings"]["prepared"]
  x_train, y_train = _pixels(path, "train")
  x_val, y_val = _pixels(path, "val")
  rows = {r["n_neighbors"]: r for r in grid["rows"]}
  for k in (1, 3, 5, 9, 17):
    ref = KNeighborsClassifier(n_neighbors=k).fit(x_train, y_train).score(x_val, y_val)
    assert rows[k]["accuracy"] == pytest.approx(ref), k
  assert rows[33]["accuracy"] is None and "exceeds" in rows[33]["skipped"]  # 24 training images
  best = max((r for r in grid["rows"] if r["accuracy"] is not None), key=lambda r: r["accuracy"])
  assert grid["best"] == {"n_neighbors": best["n_neighbors"]}
  assert grid["peak_rss_mib"]["process"] > 0

  trained = brun.run(c, tmp_path, "train")
  k = trained["params"]["n_neighbors"]
  assert k == best["n_neighbors"]
  x_test, y_test = _pixels(path, "test")
  ref = KNeighborsClassifier(n_neighbors=k).fit(x_train, y_train).predict(x_test)
  assert trained["test"]["accuracy"] == pytest.approx(np.mean(ref == y_test))
  assert trained["test"]["confusion_matrix"] == results.confusion(y_test, ref, 2).tolist()
  again = brun.run(c, tmp_path, "test", split="val")  # the saved model, loaded, on another split
  assert again["accuracy"] == pytest.approx(rows[k]["accuracy"])
  saved = json.loads((tmp_path / "knn.json").read_text())
  assert saved["test"]["val"]["accuracy"] == again["accuracy"] and saved["train"]["params"] == {"n_neighbors": k}


def test_eigenfaces_grid_train_test_match_scikit_learn(folders, tmp_path):
  c = _config(folders, "eigenfaces", **{"eigenfaces.variance_grid": (0.5, 0.95), "eigenfaces.c_grid": (0.01, 1.0)})
  grid = brun.run(c, tmp_path, "grid_search")
  path = json.loads((tmp_path / "eigenfaces.json").read_text())["settings"]["prepared"]
  x_train, y_train = _pixels(path, "train")
  x_val, y_val = _pixels(path, "val")
  for row in grid["rows"]:
    pca = PCA(n_components=row["variance"], svd_solver="full").fit(x_train)
    svm = LinearSVC(C=row["C"], max_iter=2000, random_state=0).fit(pca.transform(x_train), y_train)
    assert row["n_components"] == pca.n_components_
    assert row["accuracy"] == pytest.approx(svm.score(pca.transform(x_val), y_val)), row
    assert row["pca"] == "full"
  trained = brun.run(c, tmp_path, "train")
  v, cc = trained["params"]["variance"], trained["params"]["C"]
  pca = PCA(n_components=v, svd_solver="full").fit(x_train)
  svm = LinearSVC(C=cc, max_iter=2000, random_state=0).fit(pca.transform(x_train), y_train)
  x_test, y_test = _pixels(path, "test")
  assert trained["test"]["accuracy"] == pytest.approx(svm.score(pca.transform(x_test), y_test))
  assert brun.run(c, tmp_path, "test")["accuracy"] == trained["test"]["accuracy"]


def test_eigenfaces_trains_a_variance_above_the_grid(folders, tmp_path):
  c = _config(folders, "eigenfaces", **{"eigenfaces.variance_grid": (0.25,), "eigenfaces.c_grid": (1.0,)})
  brun.run(c, tmp_path, "grid_search")
  c.baseline.eigenfaces.variance, c.baseline.eigenfaces.C = 0.99, 1.0  # needs more components than cached
  trained = brun.run(c, tmp_path, "train")
  path = json.loads((tmp_path / "eigenfaces.json").read_text())["settings"]["prepared"]
  x_train, y_train = _pixels(path, "train")
  x_test, y_test = _pixels(path, "test")
  pca = PCA(n_components=0.99, svd_solver="full").fit(x_train)
  svm = LinearSVC(C=1.0, max_iter=2000, random_state=0).fit(pca.transform(x_train), y_train)
  assert trained["n_components"] == pca.n_components_ > 1
  assert trained["test"]["accuracy"] == pytest.approx(svm.score(pca.transform(x_test), y_test))


def test_eigenfaces_incremental_pca_over_the_memory_budget(folders, tmp_path):
  c = _config(
    folders,
    "eigenfaces",
    memory_gb=2e-4,
    **{"eigenfaces.variance_grid": (0.5,), "eigenfaces.c_grid": (1.0,), "eigenfaces.incremental_components": 6},
  )
  row = brun.run(c, tmp_path, "grid_search")["rows"][0]
  assert row["pca"] == "incremental"
  path = json.loads((tmp_path / "eigenfaces.json").read_text())["settings"]["prepared"]
  x_train, y_train = _pixels(path, "train")
  x_val, y_val = _pixels(path, "val")
  ipca = IncrementalPCA(n_components=6, batch_size=8).fit(x_train)  # the same batches, in the same order
  k = eigenfaces.components_for(ipca.explained_variance_ratio_, 0.5)
  svm = LinearSVC(C=1.0, max_iter=2000, random_state=0).fit(ipca.transform(x_train)[:, :k], y_train)
  assert row["n_components"] == k
  assert row["accuracy"] == pytest.approx(svm.score(ipca.transform(x_val)[:, :k], y_val))


def test_components_for_matches_scikit_learn():
  x = np.random.default_rng(0).normal(size=(40, 12)) * np.arange(1, 13)
  ratio = PCA().fit(x).explained_variance_ratio_
  for v in (0.1, 0.25, 0.5, 0.75, 0.95, 0.999):
    assert eigenfaces.components_for(ratio, v) == PCA(n_components=v, svd_solver="full").fit(x).n_components_


def test_knn_votes_break_ties_like_scikit_learn():
  labels = np.array([[1, 0, 0, 1, 2], [2, 2, 1, 1, 0]])  # neighbours' labels, nearest first
  ks = [1, 2, 3, 4, 5]
  ours = knn.votes(labels, ks, 3)
  for row, neighbour_labels in enumerate(labels):
    x = np.arange(1.0, 6.0)[:, None]  # training points at distances 1..5 from the query at 0
    ref = [KNeighborsClassifier(n_neighbors=k).fit(x, neighbour_labels).predict([[0.0]])[0] for k in ks]
    assert ours[:, row].tolist() == ref


def test_knn_grid_search_resumes_after_an_interruption(folders, tmp_path, monkeypatch):
  c = _config(folders, "knn", checkpoint_every=1, **{"knn.grid": (1, 3, 5)})
  c.baseline.batch_size = 4  # 12 validation images: 3 batches
  reference = brun.run(c, tmp_path / "uninterrupted", "grid_search")["rows"]

  saves = []
  original = results.Progress.save

  def save_then_die(self, position, arrays):
    original(self, position, arrays)
    saves.append(position)
    if len(saves) == 2:
      raise KeyboardInterrupt  # killed right after the second checkpoint

  monkeypatch.setattr(results.Progress, "save", save_then_die)
  with pytest.raises(KeyboardInterrupt):
    brun.run(c, tmp_path / "wd", "grid_search")
  assert (tmp_path / "wd" / "knn_work" / "grid_val.npz").is_file()
  monkeypatch.setattr(results.Progress, "save", original)
  starts = []
  batches = inputs.FeatureMaker.batches

  def spy(self, source, *, desc="", start=0):
    starts.append((desc, start))
    return batches(self, source, desc=desc, start=start)

  monkeypatch.setattr(inputs.FeatureMaker, "batches", spy)
  resumed = brun.run(c, tmp_path / "wd", "grid_search")["rows"]
  assert ("knn grid (val)", 2) in starts  # two of three validation batches were not read again
  assert resumed == reference
  assert not (tmp_path / "wd" / "knn_work" / "grid_val.npz").exists()


def test_eigenfaces_grid_search_resumes_row_by_row(folders, tmp_path, monkeypatch):
  c = _config(folders, "eigenfaces", **{"eigenfaces.variance_grid": (0.5, 0.95), "eigenfaces.c_grid": (0.1, 1.0)})
  fits = []
  original = eigenfaces._fit_svm

  def fit_then_die(*args):
    fits.append(args[1])
    if len(fits) == 3:
      raise KeyboardInterrupt
    return original(*args)

  monkeypatch.setattr(eigenfaces, "_fit_svm", fit_then_die)
  with pytest.raises(KeyboardInterrupt):
    brun.run(c, tmp_path, "grid_search")
  assert len(json.loads((tmp_path / "eigenfaces.json").read_text())["grid_search"]["rows"]) == 2
  fits.clear()
  monkeypatch.setattr(eigenfaces, "_fit_svm", original)
  rows = brun.run(c, tmp_path, "grid_search")["rows"]
  assert [(r["variance"], r["C"]) for r in rows] == [(0.5, 0.1), (0.5, 1.0), (0.95, 0.1), (0.95, 1.0)]


def test_model_files_are_not_pickles_and_foreign_files_are_refused(folders, tmp_path):
  import pickle

  c = _config(folders, "knn", **{"knn.n_neighbors": 3})
  brun.run(c, tmp_path, "train")
  est = tmp_path / "knn_model" / "estimator.skops"
  import zipfile

  assert zipfile.is_zipfile(est)  # skops: JSON schema + .npy arrays, no pickle stream
  est.write_bytes(pickle.dumps({"not": "an estimator"}))
  with pytest.raises(UserError, match="not a skops file"):
    brun.run(c, tmp_path, "test")


def test_other_settings_are_refused_without_overwrite(folders, tmp_path):
  c = _config(folders, "knn", **{"knn.grid": (1, 3)})
  brun.run(c, tmp_path, "grid_search")
  c.baseline.knn.grid = (1, 5)
  with pytest.raises(UserError, match="other settings.*--overwrite"):
    brun.run(c, tmp_path, "grid_search")
  rows = brun.run(c, tmp_path, "grid_search", overwrite=True)["rows"]
  assert [r["n_neighbors"] for r in rows] == [1, 5]


def test_memory_budget_and_missing_grid_are_one_line_errors(folders, tmp_path):
  c = _config(folders, "knn", memory_gb=1e-6)
  with pytest.raises(UserError, match="over baseline.memory_gb.*train_per_class"):
    brun.run(c, tmp_path, "grid_search")
  c = _config(folders, "knn")
  with pytest.raises(UserError, match="no grid search"):
    brun.run(c, tmp_path / "fresh", "train")


def test_balanced_indices_are_class_balanced_and_seeded():
  y = np.array([0] * 10 + [1] * 3 + [2] * 7)
  idx = inputs.balanced_indices(y, 4, 3, seed=1)
  assert np.bincount(y[idx]).tolist() == [4, 3, 4] and np.all(np.diff(idx) > 0)
  assert idx.tolist() == inputs.balanced_indices(y, 4, 3, seed=1).tolist()
  assert inputs.balanced_indices(y, 0, 3, seed=1).tolist() == list(range(20))
