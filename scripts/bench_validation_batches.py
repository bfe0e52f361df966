"""Seconds of one epoch's validation loss with its batches kept (train.validation_batches)
against reading them again, at a preset (default: the CPU-sized default), in one process.

  python scripts/bench_validation_batches.py [--config=proxy_dis] [--preset=default] [--rounds=3]
"""

import argparse
import os
import time

import musicrep_jax

musicrep_jax.cli_environment()
from musicrep_jax import configlib, train  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--config", default="proxy_dis")
  parser.add_argument("--preset", default="default")
  parser.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"))
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  config = configlib.load(args.config, args.preset)
  config.data_dir = args.data_dir
  setup = train.Setup(config, train.load_dataset(config))
  state = setup.init_state(0)
  train.validation_loss(setup, state, 0)  # compiles, reads and keeps the batches
  for r in range(args.rounds):
    start = time.time()
    train.validation_loss(setup, state, 0)
    kept = time.time() - start
    setup._validation_batches = None  # pylint: disable=protected-access
    start = time.time()
    train.validation_loss(setup, state, 0)
    read = time.time() - start
    print(f"round {r}: validation loss with its batches kept {kept:.2f} s, read again {read:.2f} s")


if __name__ == "__main__":
  main()
