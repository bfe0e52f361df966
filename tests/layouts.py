"""Small copies of real corpora in their exact on-disk layouts, with real encoded audio."""

import os

import numpy as np
import soundfile as sf

SR = 16000
MTG_HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
# (genre, instrument, mood/theme) tags of generated MTG-Jamendo tracks, by track number.
MTG_GENRES, MTG_INSTRUMENTS, MTG_MOODS = ("rock", "jazz", "electronic"), ("piano", "guitar"), ("happy", "sad", "film")


def clip(path, freq, seconds=4.0, sr=SR, channels=1):
  """A tone with a little noise, encoded by libsndfile (MP3 or FLAC by the extension)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  t = np.arange(int(seconds * sr)) / sr
  x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * np.random.default_rng(int(freq)).normal(size=t.shape)
  sf.write(path, np.stack([x] * channels, 1) if channels > 1 else x, sr)


def mtg_row(i, split_dir_tag=""):
  tags = [f"genre---{MTG_GENRES[i % 3]}", f"instrument---{MTG_INSTRUMENTS[i % 2]}", f"mood/theme---{MTG_MOODS[i % 3]}"]
  return "\t".join([f"track_{i:07d}", f"artist_{i:06d}", f"album_{i:06d}", f"{i % 100:02d}/{i}.mp3", "200.0", *tags])


def mtg_jamendo(root, splits=(("train", range(0, 12)), ("validation", range(12, 16)), ("test", range(16, 20))),
                low=(3, 7), crlf=("validation",), extra_rows=None, **audio):
  """A checkout of the MTG-Jamendo repository with audio: split-0 of autotagging (every
  row) and of autotagging_moodtheme (the same rows with only their mood/theme tag), and a
  split-1 with train and test swapped. Tracks in `low` have only their .low.mp3 file; the
  files of `crlf` splits end their lines in CRLF. extra_rows: {split: [raw lines]};
  audio: clip()'s seconds, sr and channels."""
  for split, ids in splits:
    for i in ids:
      name = f"{i}.low.mp3" if i in low else f"{i}.mp3"
      clip(os.path.join(root, "audio", f"{i % 100:02d}", name), 150 + 37 * i, **audio)
  swapped = {"train": "test", "test": "train", "validation": "validation"}
  for n, rename in ((0, {s: s for s in swapped}), (1, swapped)):
    folder = os.path.join(root, "data", "splits", f"split-{n}")
    os.makedirs(folder, exist_ok=True)
    for split, ids in splits:
      end = "\r\n" if split in crlf else "\n"
      rows = [mtg_row(i) for i in ids] + list((extra_rows or {}).get(split, []) if n == 0 else [])
      with open(os.path.join(folder, f"autotagging-{rename[split]}.tsv"), "w", newline="") as f:
        f.write(end.join([MTG_HEADER, *rows]) + end)
      mood_rows = ["\t".join(r.split("\t")[:5] + [t for t in r.split("\t")[5:] if t.startswith("mood/theme---")])
                   for r in rows]
      with open(os.path.join(folder, f"autotagging_moodtheme-{rename[split]}.tsv"), "w", newline="") as f:
        f.write(end.join([MTG_HEADER, *mood_rows]) + end)
  return root


FMA_GENRES = [(2, "International", 0, 2), (12, "Rock", 0, 12), (15, "Electronic", 0, 15), (21, "Hip-Hop", 0, 21),
              (25, "Punk", 12, 12), (236, "IDM", 15, 15)]


def fma(root, n=16):
  """fma_metadata/{tracks,genres}.csv as FMA ships them (three header lines in tracks.csv,
  list columns as strings) and fma_small/ + fma_medium/ audio: tracks 0-11 are small,
  12-15 medium (fma_medium holds both, as FMA's archive does)."""
  meta = os.path.join(root, "fma_metadata")
  os.makedirs(meta, exist_ok=True)
  with open(os.path.join(meta, "genres.csv"), "w") as f:
    f.write("genre_id,#tracks,parent,title,top_level\n")
    f.writelines(f"{g},{10},{p},{t},{top}\n" for g, t, p, top in FMA_GENRES)
  split_of = lambda i: ["training"] * 6 + ["validation", "test"]  # pylint: disable=unnecessary-lambda-assignment
  lines = [",album,album,set,set,track,track,track",
           ",title,id,split,subset,genre_top,genres,genres_all",
           "track_id,,,,,,,"]
  for i in range(n):
    tid = 2 + 3 * i
    top, leaf = [("Rock", 25), ("Electronic", 236), ("Hip-Hop", 21)][i % 3]
    parents = {25: 12, 236: 15, 21: 21}
    genres_all = sorted({leaf, parents[leaf]})
    subset = "small" if i < 12 else "medium"
    lines.append(f'{tid},"Album, {i}",{i},{split_of(i)[i % 8]},{subset},{top},"[{leaf}]","{genres_all}"')
    name = f"{tid:06d}"
    for folder in (["fma_small", "fma_medium"] if subset == "small" else ["fma_medium"]):
      clip(os.path.join(root, folder, name[:3], f"{name}.mp3"), 170 + 29 * i)
  with open(os.path.join(meta, "tracks.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return root
