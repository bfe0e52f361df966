"""Build rate of a real-corpus builder, and a build killed half-way then rerun.

  python scripts/bench_corpus_build.py [--tracks=160] [--seconds=60] [--workers=1,2]

Writes an MTG-Jamendo-layout corpus (tests/layouts.py: 44.1-kHz stereo MP3 files of
`--seconds`, the repository's TSVs), then builds it once per worker count into an empty
data_dir with `python -m musicrep_jax.data --dataset=mtg_jamendo`, and prints tracks per
second of each build (the command's wall time, imports included; alternate runs of the
same machine). Last, a build is killed (SIGKILL) half-way and the same command rerun:
it must end with the same split sizes as an uninterrupted build.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
import layouts  # pylint: disable=wrong-import-position


def build(manual_dir, data_dir, workers, kill_after=None):
  cmd = [sys.executable, "-m", "musicrep_jax.data", "--dataset=mtg_jamendo", f"--manual_dir={manual_dir}",
         f"--data_dir={data_dir}", f"--workers={workers}"]
  start = time.perf_counter()
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  if kill_after is not None:
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
  out, _ = proc.communicate()
  return time.perf_counter() - start, proc.returncode, out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--tracks", type=int, default=160)
  parser.add_argument("--seconds", type=float, default=60.0)
  parser.add_argument("--workers", default="1,2")
  args = parser.parse_args()
  root = tempfile.mkdtemp(prefix="corpus_build_")
  n = args.tracks
  splits = (("train", range(0, int(n * 0.6))), ("validation", range(int(n * 0.6), int(n * 0.8))),
            ("test", range(int(n * 0.8), n)))
  start = time.perf_counter()
  layouts.mtg_jamendo(os.path.join(root, "mtg"), splits=splits, seconds=args.seconds, sr=44100, channels=2)
  print(f"wrote {n} MP3 files of {args.seconds:.0f} s (44.1 kHz stereo) in {time.perf_counter() - start:.0f} s")
  sizes = None
  for workers in [int(w) for w in args.workers.split(",")]:
    data_dir = os.path.join(root, f"tfds_{workers}")
    seconds, code, out = build(os.path.join(root, "mtg"), data_dir, workers)
    sizes = re.search(r"\((train: \d+, validation: \d+, test: \d+)", out).group(1)
    print(f"workers={workers}: {seconds:.1f} s, {n / seconds:.1f} tracks/s ({sizes}; exit {code})", flush=True)
  data_dir = os.path.join(root, "tfds_killed")
  _, code, _ = build(os.path.join(root, "mtg"), data_dir, 2, kill_after=seconds / 2)
  _, again, out = build(os.path.join(root, "mtg"), data_dir, 2)
  after = re.search(r"\((train: \d+, validation: \d+, test: \d+)", out)
  print(f"killed half-way (exit {code}), rerun: exit {again}, {after.group(1) if after else out[-300:]} "
        f"({'the same' if after and after.group(1) == sizes else 'DIFFERENT'} as uninterrupted)")
  shutil.rmtree(root)


if __name__ == "__main__":
  main()
