"""Spectrum statistics of image sets: where generated images differ from real ones in frequency.

Run by `python -m freqforensics.tools.compare_spectra`. Each set (an image folder, or one class of a
prepared dataset `DIR[:SPLIT]`) is streamed in batches, so memory does not grow with its size: the
per-coefficient moments of the 2-D DCT and of its log magnitude (float64), the azimuthally averaged
power spectrum (Durall et al., CVPR 2020) and the mean of every other feature view
(`spectral.FEATURE_KINDS`), written to `spectra.npz` and figures. The first set is the reference;
docs/classify.md says how sets are read.
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from freqforensics import spectral, stats
from freqforensics.data import images, reader
from freqforensics.errors import UserError
from freqforensics.files import atomic, figure_marks, output_paths

# The figures floor `|mean|` at this before the log: the model's EPS (1e-12) would let a single
# near-zero coefficient stretch a shared colour scale over 20 decades of nothing.
PLOT_EPS = 1e-3


def list_images(folder: str | os.PathLike) -> list[Path]:
  """Image files below `folder`, recursive and sorted; hidden files and folders are skipped."""
  root = Path(folder).expanduser()
  if not root.is_dir():
    raise UserError(f"image folder {root} does not exist: give folders of images (the first is the reference)")
  files = list(images.list_files(root).files)
  if not files:
    raise UserError(f"image folder {root} holds no images ({', '.join(images.IMAGE_EXTENSIONS)})")
  return files


def _batches(
  files: Sequence[Path], num: int, size: int, channels: int, batch_size: int, skipped: list
) -> Iterator[np.ndarray]:
  """Yields uint8 batches `(B, S, S, C)` of the first `num` usable images; counts skips in `skipped[0]`
  and their reasons in `skipped[1]` (a Counter, when given).

  Unusable files (undecodable, too small for the size) are skipped rather than fatal, so one
  truncated download does not end a run over thousands of images; the caller reports the skips.
  """
  batch: list[np.ndarray] = []
  taken = 0
  for path in files:
    if taken >= num:
      break
    try:
      batch.append(images.load_image(path, size, channels))
    except images.ImageDecodeError as e:
      skipped[0] += 1
      if len(skipped) > 1:
        skipped[1][e.reason] += 1
      continue
    taken += 1
    if len(batch) == batch_size:
      yield np.stack(batch)
      batch = []
  if batch:
    yield np.stack(batch)


@jax.jit
def _dct_and_log(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  coeffs = spectral.dct2(x)
  return coeffs, spectral.log_scale(coeffs)


def radial_power(power: np.ndarray) -> np.ndarray:
  """The 1-D power spectrum of a centred square power spectrum `(S, S)`: S // 2 rings one cycle per image
  wide (`spectral.azimuthal_average`, `r_max=0.5`)."""
  with jax.enable_x64(True):
    profile = spectral.azimuthal_average(jnp.asarray(power, jnp.float64)[..., None], power.shape[0] // 2, r_max=0.5)
  return np.asarray(profile, np.float64)[:, 0]


def prepared_split(arg: str | os.PathLike) -> tuple[Path, str] | None:
  """`DIR` or `DIR:SPLIT` naming a prepared dataset -> (DIR, SPLIT, default train); None for other paths."""
  text = str(arg)
  base, _, split = text.rpartition(":") if ":" in text and not Path(text).exists() else (text, "", "")
  path = Path(base).expanduser()
  if not (path / "dataset_info.json").is_file():
    return None
  return path, split or "train"


def luma(batch: np.ndarray) -> np.ndarray:
  """RGB uint8 `(..., 3)` -> luminance `(..., 1)` exactly as Pillow's `convert("L")` (ITU-R 601-2)."""
  r, g, b = (batch[..., i].astype(np.int64) for i in range(3))
  return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[..., None]


def _prepared_batches(
  ds: reader.PreparedDataset, split: str, label: int, num: int, channels: int, batch_size: int
) -> Iterator[np.ndarray]:
  """The first `num` images of class `label` in a prepared split, in batches (read from disk as needed)."""
  if split not in ds.num_examples:
    raise UserError(f"{ds.path} has no split {split!r}: use one of {', '.join(ds.num_examples)} (DIR:SPLIT)")
  indices = list(ds.class_range(split, label))[:num]
  source = ds.source(split)
  for lo in range(0, len(indices), batch_size):
    batch = source.read_batch(indices[lo : lo + batch_size])["image"]
    yield luma(batch) if channels == 1 and batch.shape[-1] == 3 else batch


def _datasets(args: Sequence[str | os.PathLike], num: int, size: int, channels: int, batch_size: int):
  """(name, source, batches, skipped counter) per data set: a folder is one; a prepared dataset is one per class."""
  out = []
  folders = [a for a in args if prepared_split(a) is None]
  names = iter(_unique_names(folders))
  for arg in args:
    found = prepared_split(arg)
    if found is None:
      skipped = [0, collections.Counter()]
      out.append((next(names), str(arg), _batches(list_images(arg), num, size, channels, batch_size, skipped), skipped))
      continue
    ds = reader.open_prepared(found[0])
    h, _, c = ds.image_shape
    if h != size:
      raise UserError(f"{ds.path} holds {h}x{h} images but --size is {size}: pass --size={h}")
    if c < channels:
      raise UserError(f"{ds.path} holds grayscale images: pass --grayscale")
    for label, name in enumerate(ds.label_names):
      out.append(
        (name, f"{ds.path}:{found[1]}:{name}", _prepared_batches(ds, found[1], label, num, channels, batch_size), [0])
      )
  return out


def view_names(size: int, *, wavelet: str = "haar", level: int = 0, bins: int = 0) -> list[str]:
  """The feature names of the views besides the DCT, checked against the image size (`UserError`).

  `level` 0 is 3, or as many levels as halve `size` evenly if fewer (an odd size has no packet
  view); `bins` 0 is `size // 2`.
  """
  if not level:
    level = min(3, (size & -size).bit_length() - 1)  # how often 2 divides size, at most 3
  try:
    names = [spectral.feature_name("fft_log")]
    if level:
      names.append(spectral.feature_name("wpt_log", wavelet=wavelet, level=level))
    names.append(spectral.feature_name("azimuthal", bins=bins or max(1, size // 2)))
    for name in names:
      spectral.feature_shape(name, (size, size, 1))
  except ValueError as e:
    raise UserError(f"--size={size}, --wavelet={wavelet}, --level={level}, --bins={bins}: {e}") from e
  return names


def _one_set(
  source: str, batches: Iterator[np.ndarray], skipped: list[int], size: int, channels: int, views: Sequence[str] = ()
) -> dict[str, Any]:
  shape = (size, size, channels)
  raw, logs = stats.init(shape), stats.init(shape)
  view_acc = {name: stats.init(spectral.feature_shape(name, shape)) for name in views}
  power_sum = np.zeros((size, size), np.float64)
  count = 0  # `skipped` is a list: the folder generator counts undecodable files into it
  for batch in batches:
    # float64 DCT under a scoped x64 switch (as `stats` does): the test compares with scipy in
    # float64, and float32 rounding of coefficients near 0 would show up in the log spectrum.
    with jax.enable_x64(True):
      coeffs, log_coeffs = _dct_and_log(jnp.asarray(batch, jnp.float64))
    raw = stats.update(raw, coeffs)
    logs = stats.update(logs, log_coeffs)
    for name in views:
      with jax.enable_x64(True):
        view_acc[name] = stats.update(view_acc[name], _view(jnp.asarray(batch, jnp.float64), name))
    with jax.enable_x64(True):
      power_sum += np.asarray(spectral.power_spectrum(jnp.asarray(batch, jnp.float64))).mean(axis=-1).sum(axis=0)
    count += batch.shape[0]
  if count == 0:
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted(skipped[1].items())) if len(skipped) > 1 else ""
    raise UserError(
      f"no image in {source} could be used at --size={size} ({skipped[0]} tried"
      f"{'; ' + reasons if reasons else ''}): give images of at least that size, or a smaller --size"
    )
  return {
    "count": count,
    "skipped": skipped[0],
    "mean": np.asarray(raw.mean, np.float64),
    "std": np.sqrt(stats.variance(raw)),
    "log_mean": np.asarray(logs.mean, np.float64),
    "log_std": np.sqrt(stats.variance(logs)),
    "radial": radial_power(power_sum / count),
    **{"view_" + spectral.parse_feature(name).kind: np.asarray(view_acc[name].mean, np.float64) for name in views},
  }


@functools.partial(jax.jit, static_argnums=1)
def _view(x: jax.Array, name: str) -> jax.Array:
  return spectral.raw_features(x, name, chunk=0)


def _unique_names(folders: Sequence[str | os.PathLike]) -> list[str]:
  """Folder base names as data set names; a repeated name gets `_2`, `_3`, ... so legends stay apart."""
  names: list[str] = []
  for folder in folders:
    base = Path(folder).expanduser().resolve().name or str(folder)
    name, k = base, 2
    while name in names:
      name, k = f"{base}_{k}", k + 1
    names.append(name)
  return names


def compute(
  folders: Sequence[str | os.PathLike],
  *,
  num: int,
  size: int,
  channels: int,
  batch_size: int = 64,
  wavelet: str = "haar",
  level: int = 0,
  bins: int = 0,
  views: bool = True,
) -> dict[str, Any]:
  """Spectrum statistics of each data set (the first is the reference), stacked over data sets.

  `folders` are image folders (one data set each) or prepared datasets (`DIR` or `DIR:SPLIT`, one
  data set per class, in label order).

  Returns numpy arrays: `names` (K,), `folders` (K,), `count` and `skipped` (K,), `mean`, `std`,
  `log_mean`, `log_std` (K, S, S, C) of the DCT coefficients, `radial` (K, S//2) and `frequency`
  (S//2,) ring radii in cycles per image, plus `size` and `channels`; per other view, its mean
  raw feature: `view_fft_log` and `view_wpt_log` (K, S, S, C; no packets for an odd S),
  `view_azimuthal` (K, bins, C), and their feature names in `views` (e.g. `wpt_log-haar-l3`,
  `azimuthal-b32`). `level` and `bins` as in `view_names`; `views=False` leaves the other views out.

  Args:
    folders: image folders (one data set each) or prepared datasets (`DIR` or `DIR:SPLIT`, one data set
      per class, in label order); the first is the reference.
    num: images per data set, at most (the first decodable ones).
    size: the side images are brought to; 0 = the first prepared dataset's size, else 128.
    channels: 3 (RGB) or 1 (grayscale).
    batch_size: images per streamed batch (memory, not results).
    wavelet: the packet view's wavelet (a PyWavelets name).
    level: the packet view's level; 0 = 3, or fewer where `size` does not halve three times.
    bins: the azimuthal view's bins; 0 = `size // 2`.
    views: compute the views besides the DCT and the radial power.
  """
  if not folders:
    raise UserError("no image folders given: pass one or more folders (the first is the reference)")
  if not size:  # the size of the first prepared dataset given, else 128
    found = next((p for p in map(prepared_split, folders) if p is not None), None)
    size = reader.open_prepared(found[0]).image_shape[0] if found else 128
  if num < 1 or size < 2 or batch_size < 1:
    raise UserError(f"--num ({num}) and --batch_size ({batch_size}) must be positive and --size ({size}) at least 2")
  views = view_names(size, wavelet=wavelet, level=level, bins=bins) if views else []
  sets = _datasets(folders, num, size, channels, batch_size)
  results = [_one_set(source, batches, skipped, size, channels, views) for _, source, batches, skipped in sets]
  out: dict[str, Any] = {key: np.stack([s[key] for s in results]) for key in results[0]}
  out["names"] = np.asarray([name for name, *_ in sets])
  out["folders"] = np.asarray([source for _, source, *_ in sets])
  out["frequency"] = np.arange(size // 2)
  out["size"] = np.asarray(size)
  out["channels"] = np.asarray(channels)
  out["views"] = np.asarray(views)
  return out


def fresh_out_dir(out_dir: str | os.PathLike) -> Path:
  """`out_dir` if it is new or empty, else a new `out_dir/run_<timestamp>[_k]`: never overwrites a run."""
  out = Path(out_dir).expanduser()
  if out.exists() and not out.is_dir():
    raise UserError(f"--out_dir {out} is a file: give a folder")
  if not out.exists() or not any(out.iterdir()):
    out.mkdir(parents=True, exist_ok=True)
    return out
  return output_paths.fresh_dir(out, "run")


def _channel_mean_log(x: np.ndarray) -> np.ndarray:
  """`log(|x| + PLOT_EPS)` averaged over channels: one heat-map per data set."""
  return np.mean(np.log(np.abs(x) + PLOT_EPS), axis=-1)


def _shared_limits(maps: Sequence[np.ndarray], symmetric: bool = False) -> tuple[float, float]:
  """One colour scale for all panels, from the 1st to 99th percentile so outliers do not wash it out."""
  values = np.concatenate([np.ravel(m) for m in maps])
  if symmetric:
    v = float(np.percentile(np.abs(values), 99)) or 1.0
    return -v, v
  lo, hi = np.percentile(values, [1, 99])
  return float(lo), float(hi if hi > lo else lo + 1.0)


def _panel_grid(plt, rows: int, cols: int):
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1.0, 3.0 * rows), squeeze=False, constrained_layout=True)
  return fig, axes


def _label_axes(ax) -> None:
  ax.set_xlabel("horizontal frequency")
  ax.set_ylabel("vertical frequency")


def write_figures(result: dict[str, Any], out: Path, *, pdf: bool = False) -> list[Path]:
  """Writes heat-maps, differences to the reference and radial profiles; returns the files written."""
  import matplotlib  # pylint: disable=g-import-not-at-top  (only the CLI and tests plot)

  matplotlib.use("Agg")  # no display on servers; must precede pyplot
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  names = [str(n) for n in result["names"]]
  written: list[Path] = []

  def save(fig, stem: str) -> None:
    for ext in ("png", "pdf") if pdf else ("png",):
      path = out / f"{stem}.{ext}"
      figure_marks.save_figure(fig, path, dpi=110)
      written.append(path)
    plt.close(fig)

  # (a) log |mean DCT| per data set, one colour scale so panels compare directly.
  maps = [_channel_mean_log(m) for m in result["mean"]]
  vmin, vmax = _shared_limits(maps)
  fig, axes = _panel_grid(plt, 1, len(maps))
  for ax, name, m in zip(axes[0], names, maps):
    im = ax.imshow(m, cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_title(name)
    _label_axes(ax)
  fig.colorbar(im, ax=axes, shrink=0.8, label="log(|mean DCT| + eps)")
  save(fig, "mean_spectra")

  # (b) each data set against the reference: log ratio of |mean|, difference of mean log|c|, std ratio.
  if len(names) > 1:
    others = range(1, len(names))
    rows = [
      ("log(|mean| / |mean ref|)", [maps[i] - maps[0] for i in others], "RdBu_r"),
      ("mean log|c| - ref", [np.mean(result["log_mean"][i] - result["log_mean"][0], -1) for i in others], "RdBu_r"),
      (
        "log(std / std ref)",
        [np.mean(np.log((result["std"][i] + PLOT_EPS) / (result["std"][0] + PLOT_EPS)), -1) for i in others],
        "PuOr_r",
      ),
    ]
    fig, axes = _panel_grid(plt, len(rows), len(others))
    for r, (label, diffs, cmap) in enumerate(rows):
      lo, hi = _shared_limits(diffs, symmetric=True)  # centred on 0: no difference is white
      for c, (i, d) in enumerate(zip(others, diffs)):
        im = axes[r, c].imshow(d, cmap=cmap, vmin=lo, vmax=hi)
        axes[r, c].set_title(f"{names[i]} vs {names[0]}")
        _label_axes(axes[r, c])
      fig.colorbar(im, ax=axes[r, :], shrink=0.8, label=label)
    save(fig, "differences")

  # (c) azimuthal power spectra on one log plot; bin 0 (DC) dwarfs the rest, so start at 1.
  fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
  freq = result["frequency"]
  for name, profile in zip(names, result["radial"]):
    ax.semilogy(freq[1:], profile[1:], label=name)
  ax.set_xlabel("spatial frequency (cycles per image)")
  ax.set_ylabel("mean power |F|^2 (azimuthal average)")
  ax.set_title("1-D power spectrum")
  ax.legend()
  save(fig, "radial_power")

  # (d) every view a model can read, mean raw feature per data set (channels averaged): one row per view.
  if "views" in result:
    view_names_ = {spectral.parse_feature(str(v)).kind: str(v) for v in result["views"]}
    rows = [("dct_log", result["log_mean"])] + [
      (k, result[f"view_{k}"]) for k in ("fft_log", "wpt_log") if f"view_{k}" in result
    ]
    fig = plt.figure(figsize=(3.0 * len(names) + 1.2, 2.9 * (len(rows) + 1)), constrained_layout=True)
    grid = fig.add_gridspec(len(rows) + 1, len(names))
    for r, (kind, means) in enumerate(rows):
      maps = [np.mean(m, axis=-1) for m in means]
      lo, hi = _shared_limits(maps)
      for c, (name, m) in enumerate(zip(names, maps)):
        ax = fig.add_subplot(grid[r, c])
        im = ax.imshow(m, cmap="viridis", vmin=lo, vmax=hi)
        ax.set_title(name if r == 0 else "", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if c == 0:
          ax.set_ylabel(view_names_.get(kind, kind))
      fig.colorbar(im, ax=fig.axes[-len(names) :], shrink=0.8, label="mean feature")
    ax = fig.add_subplot(grid[len(rows), :])
    azimuthal = result["view_azimuthal"]
    centres = (np.arange(azimuthal.shape[1]) + 0.5) / azimuthal.shape[1] * spectral.R_MAX
    for name, profile in zip(names, azimuthal):
      ax.plot(centres, profile.mean(axis=-1), label=name)
    ax.set_xlabel("radius (cycles per pixel; 0.5 = Nyquist along an axis)")
    ax.set_ylabel(view_names_.get("azimuthal", "azimuthal"))
    ax.legend(fontsize=8)
    save(fig, "views")
  return written


def run_spectra(
  folders: Sequence[str | os.PathLike],
  out_dir: str | os.PathLike,
  *,
  num: int,
  size: int,
  channels: int,
  batch_size: int = 64,
  pdf: bool = False,
  wavelet: str = "haar",
  level: int = 0,
  bins: int = 0,
) -> tuple[Path, list[Path]]:
  """`compute`, then `spectra.npz` and figures in a fresh folder below `out_dir`; returns (folder, files).

  Args:
    folders: the data sets, as `compute` takes them (the first is the reference).
    out_dir: a fresh folder is made below it; it must not lie inside an input.
    num: images per data set, at most.
    size: the side images are brought to (0 as in `compute`).
    channels: 3 (RGB) or 1 (grayscale).
    batch_size: images per streamed batch.
    pdf: also write each figure as PDF.
    wavelet: the packet view's wavelet.
    level: the packet view's level (0 as in `compute`).
    bins: the azimuthal view's bins (0 = `size // 2`).
  """
  output_paths.check_separate(out_dir, [prepared_split(f)[0] if prepared_split(f) else f for f in folders])
  result = compute(
    folders, num=num, size=size, channels=channels, batch_size=batch_size, wavelet=wavelet, level=level, bins=bins
  )
  out = fresh_out_dir(out_dir)
  npz = out / "spectra.npz"
  atomic.write_with(npz, lambda p: np.savez(p, **result))
  return out, [npz, *write_figures(result, out, pdf=pdf)]


def class_mean_spectra(
  dataset_dir: str | os.PathLike, *, per_class: int = 500, batch_size: int = 128
) -> tuple[tuple[str, ...], np.ndarray]:
  """Mean `log(|DCT| + eps)` per class over (up to `per_class` of each class of) a prepared dataset's
  training split: `compute`'s `log_mean` of `DIR:train`. Returns the label names and `(classes, H, W, C)`."""
  ds = reader.open_prepared(dataset_dir)
  h, _, c = ds.image_shape
  out = compute([f"{ds.path}:train"], num=per_class, size=h, channels=c, batch_size=batch_size, views=False)
  return tuple(str(n) for n in out["names"]), out["log_mean"]
