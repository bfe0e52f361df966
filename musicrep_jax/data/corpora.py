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
  validation, d-f test (the usual split); `magnatagatune:clean` keeps only the clips
  with a top-50 tag (Won et al. 2020's split).
- tagged_folder: audio files under the folder, `tags.csv` with columns
  `path,tags[,split]` (tags separated by `;`, split one of train/validation/test,
  otherwise chosen from a hash of the path: 80/10/10), and `categories.csv`
  with columns `tag,category` (its categories are the dataset's).
- mtg_jamendo (jamendo.py) and fma (fma.py): their modules document their layouts.

Categories are the corpus's own (any number, each a lowercase word); a category whose
tags no training track has is an error naming the file that defines it.
"""

from __future__ import annotations

import collections
import concurrent.futures
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

# MagnaTagATune has no era tags: its categories are genre, mood and instrument.
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
  variant: str = ""  # the builder's own variant (a subset, a split): `dataset:variant`


def config_for(builder_cls, name: str, manual_dir: str, variant: str = "") -> CorpusConfig:
  """The build of `manual_dir` (a variant of it): named by the folder and a fingerprint
  of its contents, so an edited copy is a new build."""
  builder_cls.check_variant(name, variant)
  if not manual_dir:
    raise CorpusError(f"{name} is built from your own copy: pass --manual_dir=DIR (see musicrep_jax/data/corpora.py)")
  manual_dir = os.path.abspath(os.path.expanduser(manual_dir))
  if not os.path.isdir(manual_dir):
    raise CorpusError(f"--manual_dir={manual_dir} is not a folder")
  digest = hashlib.sha1(manual_dir.encode()).hexdigest()[:8]
  contents = fingerprint(manual_dir)
  prefix = f"{variant}-" if variant else ""
  return CorpusConfig(name=f"{prefix}dir{digest}-{contents[:10]}", description=f"built from {manual_dir} ({contents})",
                      manual_dir=manual_dir, variant=variant)


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


def grouped(pairs) -> dict[str, list[str]]:
  """{category: [tag, ...]} of (tag, category) pairs: the paper's categories first in
  their order (genre, mood, instrument, era), then others in the order they appear; tags
  in the order they appear."""
  out: dict[str, list[str]] = {}
  for tag, cat in pairs:
    out.setdefault(cat, []).append(tag)
  rank = {c: i for i, c in enumerate(features.CATEGORIES)}
  return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))


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
  """Base builder: subclasses give the vocabulary and the rows.

  A vocabulary is {category: [tag, ...]} with the corpus's own categories (any number,
  features.check_category_name); each category gets a subspace. `workers` threads decode
  the audio while the examples are written, a bounded number of files ahead: a build
  holds a few dozen decoded files in memory whatever the corpus size."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [CorpusConfig(name="default", description="set --manual_dir")]
  VARIANTS: dict[str, str] = {}  # variant pattern -> what it selects (for the error message)
  workers = max(1, os.cpu_count() or 1)

  @classmethod
  def check_variant(cls, name: str, variant: str) -> None:
    if variant and not cls.VARIANTS:
      raise CorpusError(f"dataset {name} has no variants; drop ':{variant}'")
    if variant and not cls.variant_ok(variant):
      raise CorpusError(f"dataset {name}:{variant} is unknown: give {name} or {name}:VARIANT with VARIANT one of "
                        + "; ".join(f"{k} ({v})" for k, v in cls.VARIANTS.items()))

  @classmethod
  def variant_ok(cls, variant: str) -> bool:
    return variant in cls.VARIANTS

  def vocab(self) -> dict[str, list[str]]:
    raise NotImplementedError

  def rows(self, report: collections.Counter, skipped: list) -> list[Row]:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    vocab = self.vocab()
    return self.dataset_info_from_configs(features=features.features_dict(vocab), description=self.__doc__,
                                          metadata=features.metadata(vocab))

  def _checked_vocab(self, vocab: dict[str, list[str]], where: str) -> dict[str, list[str]]:
    """The vocabulary with its names checked: categories are words, tags unique in their category."""
    for c, tags in vocab.items():
      try:
        features.check_category_name(c, where)
      except ValueError as e:
        raise CorpusError(str(e)) from None
      if len(set(tags)) != len(tags):
        dup = next(t for t in tags if tags.count(t) > 1)
        raise CorpusError(f"{where}: the tag {dup!r} is given twice in the category {c!r}")
    if not vocab:
      raise CorpusError(f"{where} gives no tag: the corpus needs at least one category with tags")
    return vocab

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
    unused = [c for c in self.vocab() if not any(r.tags.get(c) for r in by_split["train"])]
    if unused:
      raise CorpusError(f"no training track of {self.builder_config.manual_dir} has a tag of the category "
                        f"{unused[0]!r}: {self.category_source()} gives it tags that no training track has "
                        "(a disentangled model needs labels in every category)")
    print("tracks: " + ", ".join(f"{s} {len(by_split[s])}" for s in SPLIT_NAMES) + "; categories: "
          + ", ".join(f"{c} ({len(t)} tags)" for c, t in self.vocab().items()), flush=True)
    return {s: self._generate_examples(by_split[s], s) for s in SPLIT_NAMES if by_split[s]}

  def category_source(self) -> str:
    """The file that defines the categories (named in errors)."""
    return "the corpus's metadata"

  def _skip(self, name: str, reason: str) -> None:
    self._report[reason.split(" (")[0]] += 1
    self._skipped.append({"file": name, "reason": reason})

  def _generate_examples(self, rows, split) -> Iterator:
    vocab = self.vocab()

    def decode(r):
      try:
        return r, audio_lib.decode(r.path), None
      except audio_lib.BadAudio as e:
        return r, None, e

    with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
      ahead = collections.deque()
      todo = iter(rows)
      bar = tqdm.tqdm(total=len(rows), desc=f"decoding {split}", unit="file", leave=False)
      while True:
        while len(ahead) < 4 * self.workers:  # bounded read-ahead: memory does not grow with the corpus
          r = next(todo, None)
          if r is None:
            break
          ahead.append(pool.submit(decode, r))
        if not ahead:
          break
        r, x, error = ahead.popleft().result()
        bar.update()
        if error is not None:
          self._skip(r.path, str(error))
          continue
        yield r.track_id, dict(audio=x, track_id=r.track_id, triplet=features.NO_TRIPLET,
                               **features.encode_tags(vocab, r.tags))
      bar.close()

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
    if getattr(self, "_category_map", None) is None:  # the vocabulary is read once, not per tag
      self._category_map = {}
      for c, names in self.vocab().items():
        for t in names:
          self._category_map.setdefault(t, c)
    out = collections.defaultdict(list)
    for t in tags:
      if t in self._category_map:
        out[self._category_map[t]].append(t)
      else:
        self._report["unknown tag"] += 1
        self._dropped_labels.append({"file": name, "tag": t})
    return dict(out)


class MsdLastfm50(AudioTagCorpus):
  """Million Song Dataset previews with the Last.fm top-50 tags (user-supplied copy)."""

  def vocab(self):
    path = os.path.join(self.builder_config.manual_dir, "categories.tsv")
    if not os.path.exists(path):
      return MSD_CATEGORIES
    pairs = []
    with open(path) as f:
      for i, line in enumerate(f):
        if line.strip():
          tag, sep, cat = line.rstrip("\r\n").partition("\t")
          if not sep:
            raise CorpusError(f"{path} line {i + 1} is not tag<TAB>category")
          pairs.append((tag, cat))
    return self._checked_vocab(grouped(pairs), path)

  def category_source(self):
    path = os.path.join(self.builder_config.manual_dir, "categories.tsv")
    return path if os.path.exists(path) else "MSD_CATEGORIES (corpora.py)"

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
  """MagnaTagATune clips with their top-50 tags (user-supplied copy).

  Two splits, both by the folders of the official copy (0-b train, c validation, d-f
  test): `magnatagatune` keeps every clip (25,863; those without a top-50 tag are tracks
  with no label), `magnatagatune:clean` keeps only the clips with at least one top-50 tag
  (the split of Lee et al. 2017 that Won et al. 2020 report on: about 21,000 clips,
  15,250 / 1,529 / 4,332). Compare figures only on the same split."""

  VARIANTS = {"clean": "only the clips with a top-50 tag: the split of Won et al. 2020"}

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
    return grouped((t, next((c for c, s in MTAT_CATEGORY_OF.items() if t in s), "instrument")) for t in top)

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
      tags = self._tags_by_category([n for n, v in zip(names, r[1:-1]) if v == "1"], rel)
      if self.builder_config.variant == "clean" and not tags:
        continue  # not a skip: the clean split is defined without these clips
      out.append(Row(r[0], path, tags, split))
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
    path = self.category_source()
    return self._checked_vocab(grouped((row["tag"], row["category"]) for _, row in _csv_rows(
        _require(path, "give a CSV with columns tag,category"), ("tag", "category"))), path)

  def category_source(self):
    return os.path.join(self.builder_config.manual_dir, "categories.csv")

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


def builders() -> dict:
  from musicrep_jax.data import fma  # pylint: disable=import-outside-toplevel
  from musicrep_jax.data import jamendo  # pylint: disable=import-outside-toplevel
  return {"mtg_jamendo": jamendo.MtgJamendo, "fma": fma.Fma, "magnatagatune": Magnatagatune,
          "msd_lastfm50": MsdLastfm50, "tagged_folder": TaggedFolder}
