"""TFDS builders for real tagged corpora, read from the user's copy (`--manual_dir`).

Each builder lists (track id, audio path, tags by category, split) rows from the
corpus's own metadata, decodes the audio (resampled to 16 kHz mono, at most 30 s)
and writes the schema of `features.py`. Rows that cannot be used (missing,
unreadable, silent or too short files, unknown tags, duplicate ids) are skipped
and listed with their reason in `build_report.json` next to the prepared data.

Expected layouts:
- msd_lastfm50: `train.txt`, `valid.txt`, `test.txt` (one MSD track id a line,
  the standard top-50 split), `tags.tsv` (`track_id<TAB>tag,tag,...`), and the
  preview clips under `audio/`, each named by its track id (`TRXXXX.mp3`,
  `TRXXXX.clip.mp3`, any sub-folders). An optional `categories.tsv`
  (`tag<TAB>category`) replaces the default grouping of the 50 tags.
- magnatagatune: `annotations_final.csv` (the official tab-separated file) and
  the mp3 folders `0`..`f`; top-50 tags by frequency; folders 0-b train, c
  validation, d-f test (the usual split).
- tagged_folder: audio files under the folder, `tags.csv` with columns
  `path,tags[,split]` (tags separated by `;`, split one of train/validation/test,
  otherwise chosen from a hash of the path: 80/10/10), and `categories.csv`
  with columns `tag,category`.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import io
import json
import os
from typing import Iterator, NamedTuple

import tensorflow_datasets as tfds
import tqdm

from musicrep_jax import errors
from musicrep_jax.data import audio as audio_lib
from musicrep_jax.data import features

# The Last.fm top-50 tags of MSD grouped as in the paper's counts (28/12/5/5).
MSD_CATEGORIES = {
    "genre": ["rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz",
              "metal", "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "oldies",
              "blues", "hard rock", "ambient", "Hip-Hop", "country", "funk", "electro", "heavy metal",
              "Progressive rock", "rnb", "indie pop", "House"],
    "mood": ["beautiful", "chillout", "Mellow", "chill", "party", "easy listening", "sexy", "catchy",
             "sad", "happy", "acoustic", "experimental"],
    "instrument": ["female vocalists", "male vocalists", "female vocalist", "instrumental", "guitar"],
    "era": ["00s", "80s", "90s", "70s", "60s"],
}

# MagnaTagATune has no era tags: its era category is empty.
MTAT_CATEGORY_OF = {
    "genre": {"classical", "techno", "electronic", "rock", "indian", "opera", "pop", "classic", "new age",
              "dance", "country", "metal", "ambient", "choral", "beats", "beat", "electro", "jazz"},
    "mood": {"slow", "fast", "loud", "quiet", "soft", "weird", "solo", "calm", "dark", "happy", "sad"},
}
SPLIT_NAMES = ("train", "validation", "test")


class CorpusError(errors.UserError):
  """The manual_dir does not hold the corpus; the message says what is missing."""


class Row(NamedTuple):
  track_id: str
  path: str
  tags: dict
  split: str


@dataclasses.dataclass
class CorpusConfig(tfds.core.BuilderConfig):
  manual_dir: str = ""


def config_for(name: str, manual_dir: str) -> CorpusConfig:
  if not manual_dir:
    raise CorpusError(f"{name} is built from your own copy: pass --manual_dir=DIR (see musicrep_jax/data/corpora.py)")
  manual_dir = os.path.abspath(os.path.expanduser(manual_dir))
  if not os.path.isdir(manual_dir):
    raise CorpusError(f"--manual_dir={manual_dir} is not a folder")
  digest = hashlib.sha1(manual_dir.encode()).hexdigest()[:8]
  contents = fingerprint(manual_dir)
  return CorpusConfig(name=f"dir{digest}-{contents[:10]}", description=f"built from {manual_dir} ({contents})",
                      manual_dir=manual_dir)


def fingerprint(root: str) -> str:
  """A digest of every file's path, size and modification time under `root` (metadata
  and audio): a build is named by it, so an edited tags.csv or an added file makes a new
  build instead of reporting the stale one as ready."""
  h = hashlib.sha1()
  for dirpath, dirnames, names in os.walk(root):
    dirnames.sort()
    for n in sorted(names):
      path = os.path.join(dirpath, n)
      try:
        st = os.stat(path)
      except OSError:  # a dangling link: its name still counts
        st = None
      h.update(f"{os.path.relpath(path, root)}\0{st and st.st_size}\0{st and st.st_mtime_ns}\n".encode())
  return h.hexdigest()


def _require(path: str, what: str) -> str:
  if not os.path.exists(path):
    raise CorpusError(f"{path} is missing: {what}")
  return path


def _audio_files(root: str) -> dict[str, str]:
  """{stem before the first dot: path} of the audio files under root."""
  out = {}
  for dirpath, _, names in os.walk(root):
    for n in names:
      if audio_lib.is_audio(n):
        out.setdefault(n.split(".")[0], os.path.join(dirpath, n))
  return out


def _split_of(key: str) -> str:
  h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % 10
  return "train" if h < 8 else ("validation" if h == 8 else "test")


class AudioTagCorpus(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base builder: subclasses give the vocabulary and the rows."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [CorpusConfig(name="default", description="set --manual_dir")]

  def vocab(self) -> dict[str, list[str]]:
    raise NotImplementedError

  def rows(self, report: collections.Counter, skipped: list) -> list[Row]:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=features.features_dict(self.vocab()),
                                          description=self.__doc__)

  def _split_generators(self, dl_manager):
    del dl_manager
    self._report = collections.Counter()
    self._skipped, self._dropped_labels = [], []
    rows = self.rows(self._report, self._skipped)
    seen = set()
    by_split = collections.defaultdict(list)
    for r in rows:
      if r.track_id in seen:
        self._skip(r.track_id, "duplicate track id")
        continue
      seen.add(r.track_id)
      by_split[r.split].append(r)
    if not by_split["train"]:
      raise CorpusError(f"no usable training tracks in {self.builder_config.manual_dir}")
    return {s: self._generate_examples(by_split[s], s) for s in SPLIT_NAMES if by_split[s]}

  def _skip(self, name: str, reason: str) -> None:
    self._report[reason.split(" (")[0]] += 1
    self._skipped.append({"file": name, "reason": reason})

  def _generate_examples(self, rows, split) -> Iterator:
    vocab = self.vocab()
    for r in tqdm.tqdm(rows, desc=f"decoding {split}", unit="file", leave=False):
      try:
        x = audio_lib.decode(r.path)
      except audio_lib.BadAudio as e:
        self._skip(r.path, str(e))
        continue
      yield r.track_id, dict(audio=x, track_id=r.track_id, triplet=features.NO_TRIPLET,
                             **features.encode_tags(vocab, r.tags))

  def write_report(self) -> None:
    """build_report.json beside the prepared data (called once the build is complete)."""
    if getattr(self, "_report", None) is None:
      return
    with open(os.path.join(self.data_dir, "build_report.json"), "w") as f:
      json.dump({"skipped_by_reason": dict(self._report), "skipped": self._skipped,
                 "dropped_labels": self._dropped_labels}, f, indent=1)

  def _tags_by_category(self, tags: list[str], name: str) -> dict:
    """{category: tags} of one track; a tag outside the vocabulary is a label left out,
    counted under "unknown tag" and listed with its file in build_report.json."""
    out = collections.defaultdict(list)
    for t in tags:
      for c, names in self.vocab().items():
        if t in names:
          out[c].append(t)
          break
      else:
        self._report["unknown tag"] += 1
        self._dropped_labels.append({"file": name, "tag": t})
    return dict(out)


class MsdLastfm50(AudioTagCorpus):
  """Million Song Dataset previews with the Last.fm top-50 tags (user-supplied copy)."""

  def vocab(self):
    path = os.path.join(self.builder_config.manual_dir, "categories.tsv")
    if os.path.exists(path):
      out = {c: [] for c in features.CATEGORIES}
      with open(path) as f:
        for line in f:
          if line.strip():
            tag, cat = line.rstrip("\n").split("\t")
            if cat not in out:
              raise CorpusError(f"{path}: category {cat!r} of tag {tag!r} is not one of {features.CATEGORIES}")
            out[cat].append(tag)
      return out
    return MSD_CATEGORIES

  def rows(self, report, skipped):
    root = self.builder_config.manual_dir
    tags = {}
    with open(_require(os.path.join(root, "tags.tsv"), "give track_id<TAB>tag,tag,... lines")) as f:
      for line in f:
        if line.strip():
          tid, _, tag_list = line.rstrip("\n").partition("\t")
          tags[tid] = [t for t in tag_list.split(",") if t]
    files = _audio_files(_require(os.path.join(root, "audio"), "put the preview clips under audio/"))
    rows = []
    for split, fname in zip(SPLIT_NAMES, ("train.txt", "valid.txt", "test.txt")):
      with open(_require(os.path.join(root, fname), "give one track id a line")) as f:
        for tid in (l.strip() for l in f):
          if not tid:
            continue
          if tid not in files:
            self._skip(tid, "audio file missing")
          elif not tags.get(tid):
            self._skip(tid, "no tags")
          else:
            rows.append(Row(tid, files[tid], self._tags_by_category(tags[tid], tid), split))
    return rows


class Magnatagatune(AudioTagCorpus):
  """MagnaTagATune clips with their top-50 tags (user-supplied copy)."""

  def _annotations(self):
    path = _require(os.path.join(self.builder_config.manual_dir, "annotations_final.csv"),
                    "the official annotations_final.csv belongs in manual_dir")
    with open(path, newline="") as f:
      rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0][0] != "clip_id" or rows[0][-1] != "mp3_path":
      raise CorpusError(f"{path} is not the official annotations_final.csv (tab-separated, clip_id ... mp3_path)")
    return rows[0][1:-1], rows[1:]

  def vocab(self):
    names, rows = self._annotations()
    counts = collections.Counter()
    for r in rows:
      for n, v in zip(names, r[1:-1]):
        counts[n] += v == "1"
    top = [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:50]]
    out = {c: [] for c in features.CATEGORIES}
    for t in top:
      cat = next((c for c, s in MTAT_CATEGORY_OF.items() if t in s), "instrument")
      out[cat].append(t)
    return out

  def rows(self, report, skipped):
    names, rows = self._annotations()
    out = []
    for r in rows:
      rel = r[-1]
      folder = rel.split("/")[0] if "/" in rel else ""
      split = "train" if folder in "0123456789ab" and folder else ("validation" if folder == "c" else "test")
      path = os.path.join(self.builder_config.manual_dir, rel)
      if not os.path.exists(path):
        self._skip(rel, "audio file missing")
        continue
      tags = [n for n, v in zip(names, r[1:-1]) if v == "1"]
      out.append(Row(r[0], path, self._tags_by_category(tags, rel), split))
    return out


def _csv_rows(path: str, required: tuple[str, ...]):
  """(line number, row) of a CSV with a header; a UTF-8 byte-order mark (as spreadsheets
  write) is dropped, and missing columns or short rows stop with the line named."""
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    encoding = ("UTF-16 (it starts with a UTF-16 byte-order mark)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff")
                else "not UTF-8: Latin-1 or another 8-bit encoding, probably")
    line = raw[:e.start].count(b"\n") + 1
    raise CorpusError(f"{path} is {encoding} (byte {e.start}, line {line}, does not decode as UTF-8): save it as "
                      "UTF-8") from None
  with io.StringIO(text, newline="") as f:
    reader = csv.DictReader(f)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
      raise CorpusError(f"{path} has the columns {', '.join(header) or '(none)'}: it needs "
                        f"{', '.join(required)} (first line)")
    reader.fieldnames = header
    for i, row in enumerate(reader):
      if any(row.get(c) is None for c in required):
        raise CorpusError(f"{path} line {i + 2} has fewer fields than its header ({', '.join(header)})")
      yield i + 2, row


class TaggedFolder(AudioTagCorpus):
  """Any folder of audio with a tags.csv and a categories.csv."""

  def vocab(self):
    path = _require(os.path.join(self.builder_config.manual_dir, "categories.csv"),
                    "give a CSV with columns tag,category")
    out = {c: [] for c in features.CATEGORIES}
    for line, row in _csv_rows(path, ("tag", "category")):
      if row["category"] not in out:
        raise CorpusError(f"{path} line {line}: category {row['category']!r} is not one of "
                          f"{', '.join(features.CATEGORIES)}")
      out[row["category"]].append(row["tag"])
    empty = [c for c, tags in out.items() if not tags]
    if empty:
      raise CorpusError(f"{path} gives no tag of the category {', '.join(map(repr, empty))}: add a 'tag,category' "
                        "line for each of its tags (a disentangled model needs tags in every category)")
    return out

  def rows(self, report, skipped):
    """One row per file of tags.csv. A track is its real path inside the folder: a path
    that resolves outside it ('..', an absolute path, a link out) is refused, two
    spellings of one file are one track (the second skipped as a duplicate), and one file
    in two splits is refused, naming both lines."""
    root = self.builder_config.manual_dir
    real_root = os.path.realpath(root)
    path = _require(os.path.join(root, "tags.csv"), "give a CSV with columns path,tags[,split]")
    out, first_line = [], {}
    for line, row in _csv_rows(path, ("path", "tags")):
      rel = row["path"]
      real = os.path.realpath(os.path.join(root, rel))
      if os.path.commonpath([real, real_root]) != real_root:
        raise CorpusError(f"{path} line {line}: {rel!r} resolves to {real}, outside --manual_dir={root}: give paths "
                          "inside the folder (no '..', absolute path or link out of it)")
      track = os.path.relpath(real, real_root)
      if not os.path.exists(real):
        self._skip(rel, "audio file missing")
        continue
      split = row.get("split") or _split_of(track)
      if split not in SPLIT_NAMES:
        self._skip(rel, f"unknown split {split!r}")
        continue
      if track in first_line and first_line[track][1] != split:
        raise CorpusError(f"{path} lines {first_line[track][0]} and {line} put {track} in both "
                          f"{first_line[track][1]} and {split}: a track belongs to one split")
      first_line.setdefault(track, (line, split))
      tags = [t.strip() for t in row["tags"].split(";") if t.strip()]
      out.append(Row(track, real, self._tags_by_category(tags, rel), split))
    return out


BUILDERS = {"msd_lastfm50": MsdLastfm50, "magnatagatune": Magnatagatune, "tagged_folder": TaggedFolder}
