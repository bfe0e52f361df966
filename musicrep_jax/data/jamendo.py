"""MTG-Jamendo (Bogdanov et al. 2019) from the user's copy: `--dataset=mtg_jamendo[:VARIANT]`.

manual_dir is a checkout of the dataset's repository (github.com/MTG/mtg-jamendo-dataset)
with the audio that its download script fetched under `manual_dir/audio/`:

  data/splits/split-N/autotagging[_SUBSET]-{train,validation,test}.tsv
  audio/00/1000.mp3 ... audio/99/...       (or the `.low.mp3` files of the low-quality download)

Each TSV has the header TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, DURATION, TAGS (tabs; LF or
CRLF line ends); the 6th and every later field is one tag, `category---tag`, with the
categories genre, instrument and mood/theme (category `moodtheme` here: a category is a
word). The variant picks the subset and the official split: `mtg_jamendo` is split-0 of
the full set (every tag, three categories); `mtg_jamendo:moodtheme`, `:genre`,
`:instrument`, `:top50tags` a subset; `-splitN` (N = 0..4) another official split, e.g.
`mtg_jamendo:genre-split3`, `mtg_jamendo:split2`. The splits are artist-disjoint and
used as they are (never redrawn); a track in two of them is an error.

The vocabulary is every tag of the chosen subset's three files, sorted within its
category. Rows whose audio is missing are skipped and listed (file and line) in
build_report.json; a tag of another category is a label left out, listed the same way.
"""

from __future__ import annotations

import os
import re

from musicrep_jax.data import corpora

HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]
SUBSETS = ("all", "genre", "instrument", "moodtheme", "top50tags")
CATEGORY_OF_PREFIX = {"genre": "genre", "instrument": "instrument", "mood/theme": "moodtheme"}
_VARIANT = re.compile(rf"(?:({'|'.join(SUBSETS)}))?(?:-?split([0-4]))?")


def parse_variant(variant: str) -> tuple[str, int]:
  """(subset, split number) of a variant string ("" is the full set, split 0)."""
  m = _VARIANT.fullmatch(variant)
  return (m.group(1) or "all", int(m.group(2) or 0))


def split_files(root: str, variant: str) -> dict[str, str]:
  """{train, validation, test: the TSV path} of a variant."""
  subset, n = parse_variant(variant)
  stem = "autotagging" if subset == "all" else f"autotagging_{subset}"
  folder = os.path.join(root, "data", "splits", f"split-{n}")
  return {s: os.path.join(folder, f"{stem}-{s}.tsv") for s in corpora.SPLIT_NAMES}


def read_tsv(path: str) -> list[tuple[int, list[str]]]:
  """(line number, fields) of every row after the header, which must be MTG-Jamendo's."""
  if not os.path.exists(path):
    raise corpora.CorpusError(f"{path} is missing: --manual_dir must be a checkout of the MTG-Jamendo repository "
                              "(data/splits/split-N/autotagging*-{train,validation,test}.tsv)")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    lines = raw.decode("utf-8-sig").splitlines()  # LF or CRLF
  except UnicodeDecodeError as e:
    raise corpora.CorpusError(f"{path} is not UTF-8 (byte {e.start}): use the file as the repository ships "
                              "it") from None
  if not lines or lines[0].split("\t") != HEADER:
    raise corpora.CorpusError(f"{path} line 1 is not MTG-Jamendo's header ({', '.join(HEADER)}, tab-separated)")
  rows = []
  for i, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) < 6:
      raise corpora.CorpusError(f"{path} line {i} has {len(fields)} tab-separated fields: a row needs TRACK_ID, "
                                "ARTIST_ID, ALBUM_ID, PATH, DURATION and at least one tag")
    bad = next((t for t in fields[5:] if "---" not in t), None)
    if bad is not None:
      raise corpora.CorpusError(f"{path} line {i}: the tag {bad!r} is not category---tag")
    rows.append((i, fields))
  return rows


class MtgJamendo(corpora.AudioTagCorpus):
  """MTG-Jamendo's auto-tagging subsets and official splits (user-supplied copy)."""

  VARIANTS = {"SUBSET": f"one of {', '.join(SUBSETS[1:])}", "SUBSET-splitN or splitN": "N = 0..4, split-N"}

  @classmethod
  def variant_ok(cls, variant: str) -> bool:
    return bool(_VARIANT.fullmatch(variant))

  def _files(self) -> dict[str, list[tuple[int, list[str]]]]:
    if getattr(self, "_parsed", None) is None:
      self._parsed = {s: (p, read_tsv(p))
                      for s, p in split_files(self.builder_config.manual_dir, self.builder_config.variant).items()}
    return self._parsed

  def category_source(self) -> str:
    return os.path.dirname(next(iter(self._files().values()))[0])

  def vocab(self):
    tags = {}
    for _, rows in self._files().values():
      for _, fields in rows:
        for t in fields[5:]:
          prefix, _, name = t.partition("---")
          if prefix in CATEGORY_OF_PREFIX:
            tags.setdefault(CATEGORY_OF_PREFIX[prefix], set()).add(name)
    return self._checked_vocab(corpora.grouped((t, c) for c, names in tags.items() for t in sorted(names)),
                               self.category_source())

  def rows(self, report, skipped):
    root = self.builder_config.manual_dir
    audio = os.path.realpath(os.path.join(root, "audio"))
    if not os.path.isdir(audio):
      raise corpora.CorpusError(f"{os.path.join(root, 'audio')} is missing: put the audio that the repository's "
                                "download script fetched there (folders 00..99 of <id>.mp3 or <id>.low.mp3)")
    out, where = [], {}
    for split, (path, rows) in self._files().items():
      name = os.path.basename(path)
      for line, fields in rows:
        tid, rel = fields[0], fields[3]
        at = f"{name} line {line}"
        if tid in where:
          if where[tid][0] != split:
            raise corpora.CorpusError(f"{tid} is in {where[tid][1]} and {at}: the official splits are "
                                      "disjoint; use the repository's files as they are")
          self._skip(f"{at}: {tid}", "duplicate track id")
          continue
        where[tid] = (split, at)
        file = self._audio_file(audio, rel)
        if file is None:
          self._skip(f"{at}: {rel}", "audio file missing")
          continue
        by_cat = {}
        for t in fields[5:]:
          prefix, _, tag = t.partition("---")
          if prefix in CATEGORY_OF_PREFIX:
            by_cat.setdefault(CATEGORY_OF_PREFIX[prefix], []).append(tag)
          else:
            self._report["unknown tag"] += 1
            self._dropped_labels.append({"file": at, "tag": t})
        out.append(corpora.Row(tid, file, by_cat, split))
    return out

  @staticmethod
  def _audio_file(audio: str, rel: str) -> str | None:
    """audio/<PATH>, or its .low.mp3 variant; None when neither exists or PATH leaves audio/."""
    for candidate in (rel, re.sub(r"\.mp3$", ".low.mp3", rel)):
      real = os.path.realpath(os.path.join(audio, candidate))
      if os.path.commonpath([real, audio]) == audio and os.path.isfile(real):
        return real
    return None
