"""Finds, builds and opens the datasets musicrep_jax trains on.

A dataset is named `builder[:preset]`: `synth_music`, `synth_music:smoke`,
`synth_music:large` (with a size), or a real corpus read from the user's copy in
`manual_dir`, with its variant: `mtg_jamendo[:SUBSET][-splitN]`, `fma[:SUBSET][-top]`,
`magnatagatune[:clean]`, `msd_lastfm50`, `tagged_folder`.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from musicrep_jax import errors

from musicrep_jax.data import corpora
from musicrep_jax.data import synth_music

BUILDERS = {"synth_music": synth_music.SynthMusic, **corpora.builders()}


DatasetError = errors.DatasetError


def make_builder(dataset: str, data_dir: str, *, manual_dir: str = "", soundfont: str = "",
                 seed: int = 0, size: int | None = None, workers: int = 0) -> tfds.core.DatasetBuilder:
  name, _, preset = dataset.partition(":")
  if name not in BUILDERS:
    raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(BUILDERS)}")
  if soundfont and name != "synth_music":
    raise DatasetError(f"soundfont={soundfont} renders synth_music only; {name} is a corpus of recordings: drop it")
  data_dir = os.path.expanduser(data_dir)
  if os.path.isfile(data_dir):
    raise DatasetError(f"data_dir={data_dir} is a file: give a folder for the datasets")
  if name == "synth_music":
    config = synth_music.make_config(preset or "default", size=size, seed=seed, soundfont=soundfont)
    # Presets are registered configs (passed by name); variants are passed whole.
    return synth_music.SynthMusic(config=config.name if config.name in synth_music.PRESETS else config,
                                  data_dir=data_dir)
  try:  # the vocabulary is read from the corpus when the builder is made
    builder = BUILDERS[name](data_dir=data_dir, config=corpora.config_for(BUILDERS[name], name, manual_dir, preset))
  except corpora.CorpusError as e:
    raise DatasetError(str(e)) from e
  if workers:
    builder.workers = workers
  return builder


def prepare(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
  """Builds the dataset unless a complete copy is already on disk (TFDS writes to a
  temporary folder and renames it at the end, so an interrupted build is never read)."""
  # TFDS prints "Downloading and preparing dataset Unknown size ..." for a build that
  # downloads nothing: say what happens instead.
  if hasattr(builder, "_log_download_bytes"):
    builder._log_download_bytes = lambda: None  # pylint: disable=protected-access
  print(f"building {builder.name} ({builder.builder_config.name if builder.builder_config else 'default'}) in "
        f"{builder.data_dir}: done once, reused by every later run", flush=True)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False,
                                                   manual_dir=getattr(builder.builder_config, "manual_dir", None)))
  if hasattr(builder, "write_report"):
    builder.write_report()
    print_report(builder)
  return builder


def print_report(builder) -> None:
  """What the build left out, counted by reason (the list is in build_report.json)."""
  import json  # pylint: disable=import-outside-toplevel
  report = os.path.join(builder.data_dir, "build_report.json")
  if not os.path.exists(report):
    return
  with open(report) as f:
    skipped = json.load(f)
  n, labels = len(skipped["skipped"]), len(skipped.get("dropped_labels", []))
  if n:
    reasons = ", ".join(f"{k}: {v}" for k, v in skipped["skipped_by_reason"].items() if k != "unknown tag")
    print(f"skipped {n} file(s) ({reasons}); the list is in {report}")
  if labels:
    print(f"left out {labels} label(s) naming a tag that is not in the vocabulary (unknown tag); the list is in "
          f"{report}")


def load(dataset: str, data_dir: str, *, build: bool = True, **kwargs) -> tfds.core.DatasetBuilder:
  """A prepared builder for `dataset`, building it first when it is missing and `build`."""
  builder = make_builder(dataset, data_dir, **kwargs)
  if builder.is_prepared():
    return builder
  if not build:
    raise DatasetError(f"dataset {dataset} is not built in {data_dir}: run "
                       f"`python -m musicrep_jax.data --dataset={dataset} --data_dir={data_dir}`")
  try:
    return prepare(builder)
  except errors.UserError as e:
    raise DatasetError(f"could not build {dataset} in {data_dir}: {e}") from e
