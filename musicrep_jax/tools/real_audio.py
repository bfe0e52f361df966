"""The real-audio benchmark: does an embedding group real recordings that belong together?

  bash scripts/fetch_game_music.sh ~/game_music            # 6 Debian packages' music, 91 tracks
  python -m musicrep_jax.tools.real_audio --audio=~/game_music --run=runs/proxy_dis [--run=...]

The folder holds one sub-folder per group (here: a game's soundtrack, which shares its
composer, instrumentation and production); every audio file under a group's folder
belongs to it. Each track is decoded as `search` decodes it (the middle 30 s, mono,
16 kHz) and is a query, leave-one-out: its 5 nearest other tracks by cosine similarity
give precision@5 (the share of them from its group) and the nearest one 1-NN accuracy.
Mean and standard error over the queries, for:

- each --run: the whole embedding and, for a disentangled model, each category subspace;
- the run's network with its initial weights (untrained; the first run's config and seed);
- hand-made features: the mean and standard deviation over time of 20 MFCCs (librosa),
  and of each log-mel band of the first run's front end (the evaluation's `logmel`
  baseline); each dimension standardised over the collection before the cosine;
- chance: random neighbours, exactly: (n_g - 1) / (N - 1) for a track of a group of n_g.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
from absl import logging
import numpy as np

from musicrep_jax import errors
from musicrep_jax import metrics
from musicrep_jax import progress
from musicrep_jax.progress import printable

K = 5
MFCC = "MFCC statistics (20 x mean, sd)"  # the row the paired column compares against
_AUDIO = flags.DEFINE_string("audio", None, "A folder with one sub-folder of audio files per group.")
_RUNS = flags.DEFINE_multi_string("run", [], "A trained run's workdir (repeat for several).")
_OUT = flags.DEFINE_string("out", "", "Also write the figures to this JSON file.")


class BenchmarkError(errors.UserError):
  """Bad input to the benchmark; the message says what to do."""


def collection(root: str) -> tuple[list[str], np.ndarray, list[str], dict[str, str]]:
  """The audio files under root/<group>/ (sorted, as `search index` finds them: nothing
  outside the folder, and every file left out named with its reason; hidden folders
  such as the fetch script's .debs are not groups), each file's group
  index, the groups' names and {left-out path: reason}; refuses a folder with fewer than
  two groups of two files."""
  from musicrep_jax.search import building  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(root):
    raise BenchmarkError(f"--audio={root} is not a folder: run `bash scripts/fetch_game_music.sh {root}` first")
  paths, groups, names, skipped = [], [], [], {}
  for name in sorted(n for n in os.listdir(root) if not n.startswith(".")):  # hidden: the script's .debs
    folder = os.path.join(root, name)
    if os.path.islink(folder):  # as search's audio_tree: never followed, never passed over in silence
      skipped[folder] = "a link to a folder (not followed: it may lead outside the folder)"
      continue
    if not os.path.isdir(folder):
      continue
    files, _, left_out = building.audio_files(folder)
    skipped.update(left_out)
    if len(files) >= 2:
      names.append(name)
      paths += files
      groups += [len(names) - 1] * len(files)
  if len(names) < 2:
    raise BenchmarkError(f"--audio={root} has {len(names)} sub-folder(s) with two or more audio files; "
                         "give a folder with one sub-folder per group")
  return paths, np.array(groups), names, skipped


def same_group_retrieval(embeddings: np.ndarray, groups: np.ndarray, k: int = K) -> dict:
  """Leave-one-out precision@k and 1-NN accuracy by cosine (mean and standard error over
  the queries)."""
  nn = metrics.nearest_neighbours(np.asarray(embeddings, np.float32), k)
  same = groups[nn] == groups[:, None]  # [N, k]
  return {**_mean_se(f"precision_at_{k}", same.mean(1)), **_mean_se("nn_accuracy", same[:, 0].astype(float)),
          f"precision_at_{k}_per_query": same.mean(1).tolist()}


def paired_difference(a: dict, b: dict, k: int = K) -> dict:
  """Precision@k of a minus b, paired by query: the mean difference and its standard error."""
  d = np.subtract(a[f"precision_at_{k}_per_query"], b[f"precision_at_{k}_per_query"])
  return _mean_se("difference", d)


def chance(groups: np.ndarray, k: int = K) -> dict:
  """The same figures for random neighbours: each is (n_g - 1) / (N - 1) in expectation."""
  sizes = np.bincount(groups)[groups]
  p = (sizes - 1) / (len(groups) - 1)
  return {**_mean_se(f"precision_at_{k}", p), **_mean_se("nn_accuracy", p)}


def _mean_se(name: str, values: np.ndarray) -> dict:
  return {name: float(np.mean(values)), f"{name}_se": float(np.std(values, ddof=1) / np.sqrt(len(values)))}


def standardised(x: np.ndarray) -> np.ndarray:
  """Each column to mean 0 and standard deviation 1 over the rows (constant columns: 0)."""
  sd = x.std(0)
  return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)


def mfcc_statistics(track: np.ndarray, sample_rate: int, n_mfcc: int = 20) -> np.ndarray:
  """[2 * n_mfcc]: the mean and standard deviation over time of each MFCC (librosa's
  defaults otherwise)."""
  try:
    import librosa  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise BenchmarkError("the MFCC baseline needs librosa: pip install 'librosa>=0.10' "
                         "(make install installs it)") from e
  m = librosa.feature.mfcc(y=track.astype(np.float32) / 32768, sr=sample_rate, n_mfcc=n_mfcc)
  return np.concatenate([m.mean(1), m.std(1)])


def mfcc_retrieval(tracks, groups) -> dict:
  """same_group_retrieval of the standardised MFCC statistics of the int16 16-kHz tracks."""
  from musicrep_jax.data import features  # pylint: disable=import-outside-toplevel
  mfcc = np.stack([mfcc_statistics(t, features.SAMPLE_RATE) for t in tracks])
  return same_group_retrieval(standardised(mfcc), groups)


def _statistics_embedder(setup, stats_fn):
  """int16 tracks -> [N, D]: stats_fn(audio) of each 3-s window, averaged over the
  track's windows, as a model's song embedding is (evaluate.song_embeddings)."""
  import types  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from musicrep_jax import evaluate, windows  # pylint: disable=import-outside-toplevel
  fn = types.SimpleNamespace(config=setup.config, embed_fn=jax.jit(lambda state, audio: stats_fn(audio)))
  return lambda tracks: evaluate.song_embeddings(fn, None, windows.array_windows(
      tracks, crop_len=setup.crop_len, batch_size=setup.config.eval.batch_size))[0]


def rows_for_run(workdir: str, tracks, groups) -> list[tuple[str, dict]]:
  """The run's rows: its whole embedding, then each category subspace of a disentangled model."""
  from musicrep_jax.search import trained  # pylint: disable=import-outside-toplevel
  model = trained.Model.load(workdir)
  song = model.embed(tracks)
  name = os.path.basename(os.path.normpath(workdir))
  rows = [(f"{name}: whole embedding", same_group_retrieval(song, groups))]
  if model.disentangled:
    for aspect in model.categories:
      mask = trained.aspect_mask(model.dims, True, aspect, model.categories)
      rows.append((f"{name}: {aspect} subspace", same_group_retrieval(song[:, mask], groups)))
  return rows


def baseline_rows(workdir: str, tracks, groups) -> list[tuple[str, dict]]:
  """Untrained network (the run's config and seed), MFCC and log-mel statistics, chance."""
  from musicrep_jax import baselines  # pylint: disable=import-outside-toplevel
  from musicrep_jax import model as model_lib  # pylint: disable=import-outside-toplevel
  from musicrep_jax.search import trained  # pylint: disable=import-outside-toplevel
  setup = model_lib.Model(*model_lib.read_workdir(workdir))
  untrained = trained.Model(setup, setup.init_state(setup.config.train.seed), None, workdir).embed(tracks)
  # the evaluation's logmel baseline, window by window
  log_mel = _statistics_embedder(setup, lambda audio: baselines.log_mel_statistics(setup.log_mel, audio))(tracks)
  return [("untrained network", same_group_retrieval(untrained, groups)),
          (MFCC, mfcc_retrieval(tracks, groups)),
          ("log-mel statistics (mean, sd per band)", same_group_retrieval(standardised(log_mel), groups)),
          ("chance", chance(groups))]



def markdown(rows: list[tuple[str, dict]], n: int, n_groups: int) -> str:
  """The table; the last column: precision@5 minus MFCC statistics', paired by query."""
  lines = [f"Same-group retrieval, leave-one-out over {n} tracks of {n_groups} groups (mean ± standard error):", "",
           f"| embedding | precision@{K} | 1-NN accuracy | precision@{K} - MFCC's (paired) |", "|---|---|---|---|"]
  mfcc = dict(rows).get(MFCC)
  for name, r in rows:
    d = paired_difference(r, mfcc) if mfcc and name not in (MFCC, "chance") else None
    paired = "-" if d is None else f"{d['difference']:+.3f} ± {d['difference_se']:.3f}"
    lines.append(f"| {name} | {r[f'precision_at_{K}']:.3f} ± {r[f'precision_at_{K}_se']:.3f} | "
                 f"{r['nn_accuracy']:.3f} ± {r['nn_accuracy_se']:.3f} | {paired} |")
  return "\n".join(lines)


def decoded_collection(root: str) -> tuple[list[np.ndarray], np.ndarray, list[str], dict[str, str]]:
  """collection(root) decoded as `search` decodes: the tracks that decode, their group
  indices, the groups' names and {left-out path: reason} (bad files included)."""
  from musicrep_jax.data import audio as audio_lib  # pylint: disable=import-outside-toplevel
  paths, groups, names, skipped = collection(root)
  tracks, kept, bad = audio_lib.decode_all(paths)
  return tracks, groups[kept], names, {**skipped, **bad}


def benchmark(root: str, workdirs: list[str], out: str = "") -> str:
  """Decodes the collection, embeds it with every run and the baselines; the markdown table."""
  tracks, groups, names, skipped = decoded_collection(root)
  print(f"{len(tracks)} tracks of {len(names)} groups ({printable(', '.join(names))}); skipped {len(skipped)}",
        flush=True)
  for path, why in sorted(skipped.items()):
    print(f"  skipped {printable(path)}: {printable(why)}")
  rows = []
  for workdir in workdirs:
    rows += rows_for_run(workdir, tracks, groups)
    print(f"embedded with {workdir}", flush=True)
  rows += baseline_rows(workdirs[0], tracks, groups)
  if out:
    progress.write_json(out, {"tracks": len(tracks), "groups": names, "skipped": skipped, "runs": workdirs,
                              "rows": dict(rows)})
  return markdown(rows, len(tracks), len(names))


def main(argv):
  del argv
  from musicrep_jax import cli_environment  # pylint: disable=import-outside-toplevel
  cli_environment()
  logging.set_verbosity(logging.WARNING)  # Orbax is chatty at INFO
  if not _AUDIO.value or not _RUNS.value:
    errors.die("error: give --audio=FOLDER (scripts/fetch_game_music.sh makes one) and at least one --run=WORKDIR", 2)
  table = errors.exit_on_user_error(benchmark, os.path.expanduser(_AUDIO.value),
                                    [os.path.expanduser(w) for w in _RUNS.value], _OUT.value)
  print(table)


if __name__ == "__main__":
  app.run(main)
