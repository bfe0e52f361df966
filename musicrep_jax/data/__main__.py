"""Builds a dataset: `python -m musicrep_jax.data --dataset=synth_music:smoke --data_dir=DIR`, or a real
corpus from your copy: `--dataset=mtg_jamendo --manual_dir=DIR` (musicrep_jax/data/registry.py lists them)."""

import os
import sys
import time

import musicrep_jax

musicrep_jax.cli_environment()

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from musicrep_jax.data import registry

_DATASET = flags.DEFINE_string("dataset", "synth_music", "builder[:preset], e.g. synth_music:smoke.")
_DATA_DIR = flags.DEFINE_string("data_dir", "~/tensorflow_datasets", "Where datasets live.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", "", "The user's copy of a real corpus.")
_SOUNDFONT = flags.DEFINE_string("soundfont", "", "SF2/SF3 file for synth_music (default: TimGM6mb); several, comma-separated, render the tracks in turn ('default' names TimGM6mb).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of synth_music.")
_SIZE = flags.DEFINE_integer("size", None, "Training tracks of synth_music (with :large).")
_WORKERS = flags.DEFINE_integer("workers", 0, "Real corpora: threads decoding audio while the build writes "
                                "(0: one per CPU core).")


def main(argv):
  del argv
  from absl import logging  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.WARNING)  # TFDS logs every shard it writes at INFO
  start = time.time()
  try:
    builder = registry.load(_DATASET.value, _DATA_DIR.value, manual_dir=_MANUAL_DIR.value,
                            soundfont=_SOUNDFONT.value, seed=_SEED.value, size=_SIZE.value, workers=_WORKERS.value)
  except registry.DatasetError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  size = sum(os.path.getsize(os.path.join(builder.data_dir, f)) for f in os.listdir(builder.data_dir))
  splits = ", ".join(f"{k}: {v.num_examples}" for k, v in builder.info.splits.items())
  print(f"{_DATASET.value} ready in {builder.data_dir} ({splits}; {size / 1e6:.0f} MB; "
        f"{time.time() - start:.0f} s)")


if __name__ == "__main__":
  app.run(main)
