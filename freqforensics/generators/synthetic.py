"""The synthetic data set: real photo crops and simulated GAN upsamplers, no downloads.
Run by `python -m freqforensics.tools.synthetic`, and by training (`data.loading`).

Real class `A_real`: random crops of the photographs that ship inside scikit-image and scikit-learn.
Fake classes: another crop, downsampled 2x and brought back by the last stage of a GAN generator
(`upsamplers`: nearest, bilinear, transposed convolution), or a trained family (`families`). Output:
the class-folder layout users bring plus `synthetic.json`, written last as the completion marker.
Written by `python -m freqforensics.tools.synthetic`; what each option does is in
docs/synthetic_data.md. At their defaults the options leave the files byte-identical to earlier
versions.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import re

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from freqforensics.data import distortions
from freqforensics.errors import UserError
from freqforensics.files import atomic, locks, ownership
from freqforensics.generators import families, upsamplers

FORMAT_VERSION = 1
REAL_CLASS = "A_real"
GENERATORS = ("B_nearest", "C_bilinear", "D_transposed")
CLASSES = (REAL_CLASS,) + GENERATORS
MARKER = "synthetic.json"
LOCK = ".freqforensics.lock"  # held while a process writes (or reuses) the folder: `locks.DirLock`
LOCK_WAIT_S = 2 * 3600  # how long a second process waits for the first to finish the same folder

_BATCH = 256
# Skimage photos that are RGB colour photographs (`cat` is the same picture as `chelsea`).
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
# Crops flatter than this (black sky, retina border) look the same in every class: resample them.
_MIN_STD = 4.0
_PNG_NAME = re.compile(r"^\d{5,}\.png$")


@dataclasses.dataclass(frozen=True)
class SyntheticReport:
  """What `generate` wrote (or found): parameters and mean PSNR of each fake class."""

  out_dir: pathlib.Path
  num_per_class: int
  image_size: int
  seed: int
  classes: tuple[str, ...]
  psnr_db: dict[str, float]
  reused: bool


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[Image.Image, ...]:
  """The bundled colour photos as RGB PIL images (all load offline)."""
  import skimage.data
  from sklearn.datasets import load_sample_images

  arrays = [getattr(skimage.data, name)() for name in _SKIMAGE_PHOTOS]
  arrays.append(skimage.data.stereo_motorcycle()[0])  # The right view is nearly the same scene.
  arrays.extend(load_sample_images().images)  # china, flower
  return tuple(Image.fromarray(np.ascontiguousarray(a[..., :3], dtype=np.uint8)) for a in arrays)


@functools.lru_cache(maxsize=2)
def _region_photos(region: str) -> tuple[Image.Image, ...]:
  """The left or right half of every bundled photo: disjoint regions (`families.py` says who uses which)."""
  if region not in ("left", "right"):
    raise ValueError(f"unknown photo region {region!r}: use 'left' or 'right'")
  halves = []
  for img in _photos():
    w, h = img.size
    halves.append(img.crop((0, 0, w // 2, h) if region == "left" else (w - w // 2, 0, w, h)))
  return tuple(halves)


def random_crop(rng: np.random.Generator, size: int, region: str | None = None) -> np.ndarray:
  """One (size, size, 3) uint8 crop at a random photo, scale, sub-pixel offset and flip.

  `region` 'left' / 'right' crops from that half of every photo only (None: the whole photos).
  """
  photos = _photos() if region is None else _region_photos(region)
  for _ in range(20):
    img = photos[rng.integers(len(photos))]
    w, h = img.size
    # Source side >= 1.25x the output with a float offset: the rescale (anti-aliased LANCZOS) then
    # smears the 8x8 JPEG grid of the JPEG-sourced photos, so no class can be told by that grid.
    hi = float(min(w, h))
    lo = min(1.25 * size, hi)
    side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
    crop = img.resize((size, size), Image.LANCZOS, box=(x0, y0, x0 + side, y0 + side))
    if rng.random() < 0.5:
      crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    arr = np.asarray(crop)
    if arr.std() >= _MIN_STD:
      break
  return arr


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
  return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def class_folders(generators: tuple[str, ...]) -> tuple[str, ...]:
  """The fake classes' folder names: a simulated generator's own name, a trained family's with the letter of
  its position (`B_` for the first), so `A_real` sorts first. Raises `UserError` for unknown or repeated names."""
  unknown = [g for g in generators if g not in upsamplers.GENERATOR_SPECS and g not in families.FAMILIES]
  if unknown:
    raise UserError(
      f"unknown synthetic generators {unknown}: use simulated {', '.join(upsamplers.GENERATOR_SPECS)} or trained "
      f"{', '.join(families.FAMILIES)} in --config.data.synthetic.generators (or --generators)"
    )
  if len(set(generators)) != len(generators) or not generators:
    raise UserError(
      f"synthetic generators {list(generators)}: name each generator once, at least one, in "
      "--config.data.synthetic.generators (or --generators)"
    )
  folders = tuple(
    g if g in upsamplers.GENERATOR_SPECS else f"{chr(ord('B') + i)}_{g}" for i, g in enumerate(generators)
  )
  if len(set(folders)) != len(folders):
    raise UserError(
      f"synthetic generators {list(generators)} give the same class folder twice ({list(folders)}): "
      "reorder them in --config.data.synthetic.generators"
    )
  return folders


def generators_suffix(generators: tuple[str, ...]) -> str:
  """The cache-folder suffix of a non-default generator list ('' for the default): a hash of the names and of
  the trained families' weight checksums, so new weights never reuse images of old ones."""
  if tuple(generators) == GENERATORS:
    return ""
  class_folders(generators)
  key = [[g, families.weights_sha256(g) if g in families.FAMILIES else ""] for g in generators]
  return "-g" + hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]


def _params(
  num_per_class: int,
  image_size: int,
  seed: int,
  classes: tuple[str, ...],
  lowpass: float,
  fingerprint: float = 1.0,
  jpeg_quality: int = 0,
) -> dict:
  params = {
    "format_version": FORMAT_VERSION,
    "num_per_class": num_per_class,
    "image_size": image_size,
    "seed": seed,
    "classes": list(classes),
  }
  # Options only when used: synthetic data sets written before an option existed keep their parameters.
  if lowpass:
    params["lowpass"] = lowpass
  if fingerprint != 1.0:
    params["fingerprint"] = fingerprint
  if jpeg_quality:
    params["jpeg_quality"] = jpeg_quality
  return params


def check_options(*, fingerprint: float = 1.0, jpeg_quality: int = 0, lowpass: float = 0.0) -> None:
  """Raises `UserError` (one line, naming the option) unless the harder-data options are valid."""
  if isinstance(fingerprint, bool) or not isinstance(fingerprint, (int, float)) or not 0 < fingerprint < float("inf"):
    raise UserError(
      f"synthetic fingerprint={fingerprint!r} is not valid: give a number > 0 (1.0 = the default "
      "strength, 0.5 = weaker) with --config.data.synthetic.fingerprint (or --fingerprint)"
    )
  if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, (int, np.integer)) or not 0 <= jpeg_quality <= 100:
    raise UserError(
      f"synthetic jpeg_quality={jpeg_quality!r} is not valid: give an integer in 1..100 (or 0 = no "
      "JPEG) with --config.data.synthetic.jpeg_quality (or --jpeg_quality)"
    )
  if isinstance(lowpass, bool) or not isinstance(lowpass, (int, float)) or not 0 <= lowpass < float("inf"):
    raise UserError(
      f"synthetic lowpass={lowpass!r} is not valid: give a blur sigma >= 0 in pixels (0 = off) with "
      "--config.data.synthetic.lowpass (or --lowpass)"
    )


def variant_suffix(*, lowpass: float = 0.0, fingerprint: float = 1.0, jpeg_quality: int = 0) -> str:
  """The cache-folder suffix of the non-default options ('' at the defaults: old folders stay valid)."""
  return (
    (f"-lowpass{lowpass}" if lowpass else "")
    + (f"-fp{fingerprint}" if fingerprint != 1.0 else "")
    + (f"-jpeg{jpeg_quality}" if jpeg_quality else "")
  )


def _older_synthetic(out: pathlib.Path, classes: tuple[str, ...]) -> dict[str, str]:
  """What a version without ownership records wrote in `out`: the images of the class folders its marker
  names and of those asked for now (a run interrupted before its marker), the marker and its temporary file."""
  names = {c for c in classes if (out / c).is_dir()}
  if (out / MARKER).is_file():
    try:
      listed = json.loads((out / MARKER).read_text()).get("classes", [])
    except (json.JSONDecodeError, AttributeError):
      listed = []
    names |= {c for c in listed if re.fullmatch(r"\w+", str(c))} | set(classes)
  if not names:
    return {}
  return {**dict.fromkeys(sorted(names), "pattern:" + _PNG_NAME.pattern), MARKER: "file", MARKER + ".tmp": "file"}


def _record(out: pathlib.Path, classes: tuple[str, ...]) -> ownership.OwnershipRecord:
  """The ownership record of a synthetic data folder (one of an older version is adopted by its marker)."""
  return ownership.OwnershipRecord(out, adopt=lambda folder: _older_synthetic(folder, classes))


def _refuse_foreign(out: pathlib.Path, classes: tuple[str, ...]) -> None:
  """Refuses a folder that holds something but none of the synthetic data (its lock file alone does not count)."""
  if out.is_dir() and not _record(out, classes).is_ours() and any(p.name != LOCK for p in out.iterdir()):
    raise UserError(
      f"{out} exists without {MARKER} and holds files that are not the synthetic data's; use a new --out_dir."
    )


def _prepare_dir(out: pathlib.Path, params: dict, overwrite: bool) -> dict | None:
  """Returns the stored metadata if it can be reused; otherwise removes what the record says is ours."""
  marker = out / MARKER
  classes = tuple(params["classes"])
  rec = _record(out, classes)
  if marker.exists():
    try:
      meta = json.loads(marker.read_text())
      stored = {k: meta.get(k) for k in params}
    except (json.JSONDecodeError, AttributeError):
      meta, stored = {}, None
    if stored == params and isinstance(meta.get("psnr_db"), dict) and not overwrite:
      return meta
    if not overwrite:
      diff = (
        f"unreadable {MARKER}"
        if stored is None
        else ", ".join(f"{k}={stored[k]!r} (asked {v!r})" for k, v in params.items() if stored[k] != v)
      )
      raise UserError(
        f"{out} holds synthetic data with other parameters ({diff}); use a "
        "new --out_dir or pass overwrite=True (--overwrite) to replace it."
      )
  else:
    # An interrupted run left only our class folders: regenerating them is safe (deterministic).
    # Anything else may be user data: refuse rather than delete it.
    atomic.remove_stale_temps(out)  # the marker being written when it was killed
    foreign = [f for f in (rec.foreign() if rec.is_ours() else [p.name for p in out.iterdir()]) if f != LOCK]
    if foreign:
      raise UserError(
        f"{out} exists without {MARKER} and holds files that are not the synthetic "
        f"data's ({', '.join(foreign[:3])}); use a new --out_dir."
      )
  rec.remove_owned()
  return None


def generate(
  out_dir: str | os.PathLike,
  *,
  num_per_class: int,
  image_size: int = 64,
  seed: int = 0,
  overwrite: bool = False,
  progress: bool = True,
  generators: tuple[str, ...] = GENERATORS,
  lowpass: float = 0.0,
  fingerprint: float = 1.0,
  jpeg_quality: int = 0,
) -> SyntheticReport:
  """Writes (or reuses) the synthetic data set in `out_dir`; deterministic for `seed`.

  The report's mean PSNR is of the generator output (after `lowpass`, before JPEG) against its source crop.

  Args:
    out_dir: the synthetic data's folder; one of the same parameters is reused (`synthetic.json`).
    num_per_class: images per class.
    image_size: the images' side in pixels (64 with trained families).
    seed: the seed of every draw.
    overwrite: replace a synthetic data set of other parameters in `out_dir`.
    progress: a progress bar on stderr.
    generators: the fake classes beside `A_real` (keys of `upsamplers.GENERATOR_SPECS`).
    lowpass: > 0 blurs every generated image (Gaussian, this sigma in pixels) before it is saved: the
      upsampling ablation's "low-pass filtered generator output"; 0 = off.
    fingerprint: (> 0) scales the generators' kernel perturbation and texture noise; 1 = as is.
    jpeg_quality: 1..100 JPEG-encodes and decodes every image of every class (real and generated alike,
      so it is no class cue; Pillow's default settings, `distortions.jpeg`) as the last step before it is saved as PNG; 0 = off.
  """
  check_options(fingerprint=fingerprint, jpeg_quality=jpeg_quality, lowpass=lowpass)
  generators = tuple(generators)
  folders = class_folders(generators)
  classes = (REAL_CLASS,) + folders
  uses_families = any(g in families.FAMILIES for g in generators)
  if uses_families and image_size != families.IMAGE_SIZE:
    raise UserError(
      f"trained generator families make {families.IMAGE_SIZE}x{families.IMAGE_SIZE} images, image_size is "
      f"{image_size}: set --config.data.synthetic.image_size={families.IMAGE_SIZE} (data.image_size "
      "resizes them for the model)"
    )
  region = families.BENCH_REGION if uses_families else None  # crops from the half generator training never saw
  if num_per_class < 1:
    raise UserError(f"num_per_class must be >= 1, got {num_per_class}.")
  if image_size < 8 or image_size % 2:
    raise UserError(f"image_size must be even and >= 8 (fakes are upsampled 2x), got {image_size}.")
  out = pathlib.Path(out_dir)
  if out.exists() and not out.is_dir():
    raise UserError(f"{out} is a file, not a directory; use a new --out_dir.")
  params = _params(num_per_class, image_size, seed, classes, lowpass, fingerprint, int(jpeg_quality))
  family_meta = {}
  if uses_families:  # only then: the default synthetic data's metadata stays as it was
    params["crop_region"] = region
    params["weights_sha256"] = {
      c: families.weights_sha256(g) for c, g in zip(folders, generators) if g in families.FAMILIES
    }
    family_meta = {
      c: (
        {
          "family": g,
          "kind": families.FAMILIES[g].kind,
          "weights": families.weights_path(g).name,
          "sha256": params["weights_sha256"][c],
        }
        if g in families.FAMILIES
        else {"family": g, "kind": "simulated"}
      )
      for c, g in zip(folders, generators)
    }
  _refuse_foreign(out, classes)  # before the lock file is made in a folder that is not ours
  out.mkdir(parents=True, exist_ok=True)
  # One process writes a folder at a time: parallel runs that fill one fresh data cache wait for the
  # first, then reuse what it wrote.
  # The lock file goes before the lock does, so the folder holds only the data (a waiting process then
  # locks a fresh file: `DirLock.acquire`).
  with locks.DirLock(out, LOCK).acquire("--out_dir", wait=LOCK_WAIT_S) as lock:
    try:
      meta = _prepare_dir(out, params, overwrite)
      if meta is not None:
        psnr = {k: float(v) for k, v in meta["psnr_db"].items()}
        return SyntheticReport(out, num_per_class, image_size, seed, classes, psnr, reused=True)
      return _write(out, params, generators, family_meta, region, progress)
    finally:
      lock.path.unlink(missing_ok=True)


def _write(
  out: pathlib.Path, params: dict, generators: tuple[str, ...], family_meta: dict, region: str | None, progress: bool
) -> SyntheticReport:
  """Writes the class folders and, last, the marker (`generate`, under the folder's lock)."""
  num_per_class, image_size, seed = params["num_per_class"], params["image_size"], params["seed"]
  classes, folders = tuple(params["classes"]), class_folders(generators)
  lowpass, fingerprint = params.get("lowpass", 0.0), params.get("fingerprint", 1.0)
  jpeg_quality = params.get("jpeg_quality", 0)

  rec = _record(out, classes)
  rec.add_entries({**dict.fromkeys(classes, "pattern:" + _PNG_NAME.pattern), MARKER: "file"})
  for cls in classes:
    (out / cls).mkdir()
  width = max(5, len(str(num_per_class - 1)))
  batch = min(_BATCH, num_per_class)
  source_of = dict(zip(folders, generators))
  with_sources = [c for c, g in source_of.items() if g not in families.FAMILIES or families.FAMILIES[g].kind == "ae"]
  psnr_sum = {c: 0.0 for c in with_sources}
  bar = tqdm(total=num_per_class * len(classes), desc="synthetic", unit="img", disable=not progress)
  for start in range(0, num_per_class, batch):
    idx = range(start, min(start + batch, num_per_class))
    for k, cls in enumerate(classes):
      # One RNG per (seed, class, image): crops do not depend on batching, and the source crops of
      # the fakes are other crops than the real ones (other streams), from the same distribution.
      rngs = [np.random.default_rng([seed, k, i]) for i in idx]
      gen = source_of.get(cls)
      if gen in families.FAMILIES and families.FAMILIES[gen].kind == "gan":
        crops = None  # a GAN draws its images from noise: no source crop
        images = families.sample(gen, families.latents(rngs), batch=batch)
      else:
        crops = np.stack([random_crop(r, image_size, region=region) for r in rngs])
        if cls == REAL_CLASS:
          images = crops
        elif gen in families.FAMILIES:
          images = families.sample(gen, crops, batch=batch)  # an autoencoder's reconstruction
        else:
          half = image_size // 2
          noise = np.stack([r.normal(0, fingerprint * upsamplers.TEXTURE_STD, (half, half, 3)) for r in rngs])
          images = upsamplers.generator_fn(cls, fingerprint)(
            upsamplers.pad_to(crops, batch), upsamplers.pad_to(noise.astype(np.float32), batch)
          )
          images = images[: len(idx)]
      if cls != REAL_CLASS:
        if lowpass:
          images = np.stack(
            [np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(lowpass))) for im in images]
          )
        if crops is not None:
          psnr_sum[cls] += float(_psnr(images, crops).sum())
      if jpeg_quality:
        images = np.stack([distortions.jpeg(im, int(jpeg_quality)) for im in images])
      for i, img in zip(idx, images):
        Image.fromarray(img).save(out / cls / f"{i:0{width}d}.png", format="PNG")
      bar.update(len(idx))
  bar.close()

  psnr = {c: round(psnr_sum[c] / num_per_class, 4) for c in with_sources}
  meta = dict(params, generators=list(generators), psnr_db=psnr, **({"families": family_meta} if family_meta else {}))
  rec.write_json(MARKER, meta)  # atomic: the marker exists only once every image is written
  return SyntheticReport(out, num_per_class, image_size, seed, classes, psnr, reused=False)
