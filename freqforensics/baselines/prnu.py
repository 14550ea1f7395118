"""PRNU's grid search, train and test commands: streaming passes over prepared splits.

Fingerprints need only running sums, so no split is ever held: this process reads chunks of
`baseline.batch_size` images and hands them to worker processes (`baseline.n_jobs`), which return
their sums (train) or predictions (validation / test), in order, a few chunks in flight at a time. One pass serves the whole (levels,
sigma) grid (see `noise_residuals.residuals`). Each pass checkpoints its sums every `baseline.checkpoint_every`
chunks, so an interrupted grid search resumes at the last saved chunk. The saved model is an .npz
of plain arrays (fingerprints, levels, sigma, windows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from freqforensics.baselines import inputs, noise_residuals, parallel, results
from freqforensics.baselines.context import Context
from freqforensics.errors import UserError
from freqforensics.files import atomic


def settings(config) -> dict[str, Any]:
  p = config.baseline.prnu
  return {
    "features": "pixels (noise residuals)",
    "levels_grid": [int(v) for v in p.levels_grid],
    "sigma_grid": [float(v) for v in p.sigma_grid],
    "windows": [int(w) for w in p.windows],
  }


def _chunks(indices: np.ndarray, size: int) -> list[np.ndarray]:
  return [indices[i : i + size] for i in range(0, len(indices), size)]


def _read(source, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  batch = source.read_batch(indices)
  return batch["image"], batch["label"]


def _grid_array(grid: list[tuple[int, float]]) -> np.ndarray:
  return np.asarray(grid, np.float64).reshape(-1, 2)


def _resume(prog: results.Progress, grid: list[tuple[int, float]]) -> tuple[int, dict[str, np.ndarray]] | None:
  state = prog.load()
  if state and np.array_equal(state[1].get("grid"), _grid_array(grid)):
    return state
  return None


def fingerprints(ctx: Context, grid: list[tuple[int, float]], *, pass_name: str) -> np.ndarray:
  """Fingerprints `(G, num_classes, H, W)` from the training subset, for every (levels, sigma)."""
  h, w, ch = ctx.prepared.image_shape
  inputs.check_memory(
    f"PRNU sums for {len(grid)} grid points",
    8.0 * (len(grid) + 1) * ctx.num_classes * h * w * ch * (1 + 2 * ctx.n_jobs),
    ctx.config,
    "shrink the grid or lower --config.baseline.n_jobs",
  )
  windows = tuple(int(x) for x in ctx.b.prnu.windows)
  indices = ctx.balanced("train", ctx.b.train_per_class)
  chunks = _chunks(indices, ctx.b.batch_size)
  prog = results.Progress(ctx.results, pass_name)
  state = _resume(prog, grid)
  if state:
    start, arrays = state
    sum_wt, sum_tt = arrays["sum_wt"], arrays["sum_tt"]
  else:
    start = 0
    sum_wt = np.zeros((len(grid), ctx.num_classes, h, w, ch))
    sum_tt = np.zeros((ctx.num_classes, h, w, ch))
  source = ctx.source("train")
  tasks = ((*_read(source, c), ctx.num_classes, grid, windows) for c in chunks[start:])
  done = start
  for wt, tt in tqdm(
    parallel.ordered_map(noise_residuals.accumulate, tasks, ctx.n_jobs),
    total=len(chunks) - start,
    desc="prnu fingerprints",
    unit="chunk",
    disable=not ctx.progress,
  ):
    sum_wt += wt
    sum_tt += tt
    done += 1
    if done % ctx.b.checkpoint_every == 0 and done < len(chunks):
      prog.save(done, {"sum_wt": sum_wt, "sum_tt": sum_tt, "grid": _grid_array(grid)})
  prog.clear()
  return noise_residuals.finish_fingerprint(sum_wt, np.broadcast_to(sum_tt, sum_wt.shape), windows)


def _score(
  ctx: Context, split: str, grid: list[tuple[int, float]], prints: np.ndarray, *, pass_name: str | None = None
) -> np.ndarray:
  """Confusion counts `(G, C, C)` of `split` for every grid point (checkpointed when `pass_name`)."""
  source = ctx.source(split)
  windows = tuple(int(x) for x in ctx.b.prnu.windows)
  chunks = _chunks(np.arange(len(source)), ctx.b.batch_size)
  prog = results.Progress(ctx.results, pass_name) if pass_name else None
  state = _resume(prog, grid) if prog else None
  start, conf = (
    (state[0], state[1]["confusion"])
    if state
    else (0, np.zeros((len(grid), ctx.num_classes, ctx.num_classes), np.int64))
  )
  labels: list[np.ndarray] = []

  def tasks():
    for c in chunks[start:]:
      images, y = _read(source, c)
      labels.append(y)  # consumed in the same order as the results come back
      yield images, grid, windows, prints

  done = start
  for preds in tqdm(
    parallel.ordered_map(noise_residuals.predict, tasks(), ctx.n_jobs),
    total=len(chunks) - start,
    desc=f"prnu {split}",
    unit="chunk",
    disable=not ctx.progress,
  ):
    y = labels.pop(0)
    for g, pred in enumerate(preds):
      conf[g] += results.confusion(y, pred, ctx.num_classes)
    done += 1
    if prog and done % ctx.b.checkpoint_every == 0 and done < len(chunks):
      prog.save(done, {"confusion": conf, "grid": _grid_array(grid)})
  if prog:
    prog.clear()
  return conf


def grid_search(ctx: Context) -> bool:
  """Fills the missing grid rows of the results file; False when none was missing."""
  res, p = ctx.results, ctx.b.prnu
  grid = [(int(lv), float(s)) for lv in p.levels_grid for s in p.sigma_grid]
  todo = [(lv, s) for lv, s in grid if not res.row({"levels": lv, "sigma": s})]
  if not todo:
    return False
  store = results.Progress(res, "grid_fingerprints")  # finished fingerprints survive an interrupted val pass
  state = _resume(store, todo)
  prints = state[1]["fingerprints"] if state else fingerprints(ctx, todo, pass_name="grid_train")
  if not state:
    store.save(0, {"fingerprints": prints, "grid": _grid_array(todo)})
  conf = _score(ctx, "val", todo, prints, pass_name="grid_val")
  n_train = len(ctx.balanced("train", ctx.b.train_per_class))
  for (lv, s), c in zip(todo, conf):
    res.rows.append(
      {"levels": lv, "sigma": s, "accuracy": results.accuracy(c), "num_examples": int(c.sum()), "num_train": n_train}
    )
  res.finish_grid_search()  # saved before the pass checkpoint is cleared: a crash between the two loses nothing
  store.clear()
  return True


def train(ctx: Context) -> dict[str, Any]:
  p = ctx.b.prnu
  chosen = ctx.results.chosen({"levels": p.levels, "sigma": p.sigma})
  levels, sigma = int(chosen["levels"]), float(chosen["sigma"])
  prints = fingerprints(ctx, [(levels, sigma)], pass_name="train")[0]
  ctx.results.model_dir.mkdir(parents=True, exist_ok=True)
  path = ctx.results.model_dir / "fingerprints.npz"
  atomic.write_with(
    path,
    lambda tmp: np.savez(
      tmp,
      fingerprints=prints,
      levels=np.asarray(levels),
      sigma=np.asarray(sigma),
      windows=np.asarray(p.windows, np.int64),
      label_names=np.asarray(ctx.label_names),
    ),
  )
  n_train = len(ctx.balanced("train", ctx.b.train_per_class))
  params = {"levels": levels, "sigma": sigma}
  ctx.save_model_info(ctx.model_info(params, features="pixels (noise residuals)", num_train=n_train))
  return {"params": params, "num_train": n_train}


def load_model(path) -> dict[str, np.ndarray]:
  """The arrays of a saved PRNU model (plain .npz, no pickle)."""
  if not path.is_file():
    raise UserError(f"{path} does not exist: run the train command first")
  with np.load(path, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def test(ctx: Context, split: str) -> dict[str, Any]:
  info = ctx.load_model_info()
  model = load_model(ctx.results.model_dir / "fingerprints.npz")
  levels, sigma = int(model["levels"]), float(model["sigma"])
  config = ctx.config.copy_and_resolve_references()
  with config.unlocked():
    config.baseline.prnu.windows = tuple(int(w) for w in model["windows"])
  ctx = Context(config, ctx.workdir, ctx.prepared, ctx.results, ctx.progress)
  conf = _score(ctx, split, [(levels, sigma)], model["fingerprints"][None])[0]
  return dict(results.summary(conf, ctx.label_names), params=info["params"])
