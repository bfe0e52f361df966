"""CPU and wall seconds of the fixed costs that every command pays again, on one config:
its checkpoint operations (musicrep_jax.checkpointing: a save and its wait, the metadata
reads and a restore, as a run and its evaluation do them, in a scratch folder) and reads
of the test split's evaluation windows (input_pipeline.eval_windows, which evaluation
calls about ten times a run), each twice or three times: the later rounds are warm.

  python scripts/fixed_costs.py proxy_dis:smoke

Run it before and after a change on the same machine; compare CPU seconds (wall times
move with the load).
"""

import os
import shutil
import sys
import tempfile
import time

from musicrep_jax import checkpointing, configlib, input_pipeline, train
from musicrep_jax.data import registry


def main(spec: str = "proxy_dis:smoke", data_dir: str = "~/tensorflow_datasets") -> None:
  name, _, preset = spec.partition(":")
  config = configlib.load(name, preset)
  setup = train.Setup(config, registry.load(config.dataset, os.path.expanduser(data_dir), build=False))
  state, abstract = setup.init_state(0), setup.abstract_state()
  for round_ in range(3):
    cpu, wall = time.process_time(), time.time()
    for _ in input_pipeline.eval_windows(setup.builder, "test", crop_len=setup.crop_len,
                                         batch_size=config.eval.batch_size):
      pass
    print(f"round {round_} {'eval_windows test':17s} {time.process_time() - cpu:6.3f} CPU-s {time.time() - wall:6.3f} s")
  folder = tempfile.mkdtemp(prefix="fixed_costs-")
  try:
    for round_ in range(2):
      ckpt = checkpointing.Checkpoints(folder)
      for what, op in (("save", lambda: ckpt.save(10 + round_, state, {"epoch": round_}, best=True)),
                       ("wait", ckpt.wait), ("read_meta latest", ckpt.read_meta),
                       ("read_meta best", lambda: ckpt.read_meta("best")),
                       ("restore best", lambda: ckpt.restore(abstract, "best"))):
        cpu, wall = time.process_time(), time.time()
        op()
        print(f"round {round_} {what:17s} {time.process_time() - cpu:6.3f} CPU-s {time.time() - wall:6.3f} s")
      ckpt.close()
  finally:
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
  main(*sys.argv[1:])
