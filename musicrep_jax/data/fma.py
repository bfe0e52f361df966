"""FMA, the Free Music Archive corpus (Defferrard et al. 2017), from the user's copy:
`--dataset=fma[:SUBSET][-top]`.

manual_dir holds the metadata archive and one audio archive, unpacked:

  fma_metadata/tracks.csv   two header rows (the column's group, e.g. track, set; then its
                            name, e.g. genres_all, split), then a `track_id` row, then one row
                            a track; list columns hold strings such as "[21, 811]"
  fma_metadata/genres.csv   genre_id,#tracks,parent,title,top_level
  fma_small/000/000002.mp3  (fma_medium/, fma_large/ for the larger subsets)

The variant picks the subset (small, the default; medium; large: each holds the smaller
ones, as FMA defines them by ('set', 'subset')) and the tags: every genre of
('track', 'genres_all') by its title, or with `-top` the one ('track', 'genre_top').
The split is FMA's own ('set', 'split': training, validation, test). The tags form one
category, genre, unless manual_dir/categories.csv (tag,category) sorts the titles into
categories of the user's (tags it does not name are left out and listed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re

from musicrep_jax.data import corpora

SUBSETS = ("small", "medium", "large")
SPLITS = {"training": "train", "validation": "validation", "test": "test"}
COLUMNS = (("set", "subset"), ("set", "split"), ("track", "genres_all"), ("track", "genre_top"))
_VARIANT = re.compile(rf"({'|'.join(SUBSETS)})?(-?top)?")


def parse_variant(variant: str) -> tuple[str, bool]:
  m = _VARIANT.fullmatch(variant)
  return m.group(1) or "small", bool(m.group(2))


def _read_csv(path: str) -> list[list[str]]:
  if not os.path.exists(path):
    raise corpora.CorpusError(f"{path} is missing: unpack fma_metadata.zip into --manual_dir")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise corpora.CorpusError(f"{path} is not UTF-8 (byte {e.start}): use the file as FMA ships it") from None
  return list(csv.reader(io.StringIO(text, newline="")))


def read_tracks(path: str) -> tuple[dict[tuple[str, str], int], list[tuple[int, list[str]]]]:
  """({(group, name): column}, [(line, row)]) of tracks.csv."""
  rows = _read_csv(path)
  if len(rows) < 3:
    raise corpora.CorpusError(f"{path} has {len(rows)} line(s): FMA's tracks.csv has two header lines, a "
                              "track_id line, then the tracks")
  columns = {(a, b): i for i, (a, b) in enumerate(zip(rows[0], rows[1]))}
  missing = [f"({a}, {b})" for a, b in COLUMNS if (a, b) not in columns]
  if missing:
    raise corpora.CorpusError(f"{path} lines 1-2 lack the column(s) {', '.join(missing)}: is it FMA's tracks.csv "
                              "(two header rows)?")
  start = 3 if rows[2] and rows[2][0] == "track_id" else 2
  return columns, [(i + 1, r) for i, r in enumerate(rows[start:], start=start) if r]


def read_genres(path: str) -> dict[int, str]:
  """{genre_id: title} of genres.csv."""
  rows = _read_csv(path)
  if not rows or rows[0][:1] != ["genre_id"] or "title" not in rows[0]:
    raise corpora.CorpusError(f"{path} line 1 is not FMA's genres.csv header (genre_id,#tracks,parent,title,"
                              "top_level)")
  title = rows[0].index("title")
  out = {}
  for i, r in enumerate(rows[1:], start=2):
    try:
      out[int(r[0])] = r[title]
    except (ValueError, IndexError):
      raise corpora.CorpusError(f"{path} line {i} is not genre_id,#tracks,parent,title,top_level") from None
  return out


class Fma(corpora.AudioTagCorpus):
  """FMA's small / medium / large subsets with their genres (user-supplied copy)."""

  VARIANTS = {"SUBSET": "small, medium or large", "SUBSET-top or top": "only ('track', 'genre_top')"}

  @classmethod
  def variant_ok(cls, variant: str) -> bool:
    return bool(_VARIANT.fullmatch(variant))

  def _metadata(self):
    if getattr(self, "_parsed", None) is None:
      root = os.path.join(self.builder_config.manual_dir, "fma_metadata")
      self._parsed = read_tracks(os.path.join(root, "tracks.csv")), read_genres(os.path.join(root, "genres.csv"))
    return self._parsed

  def category_source(self) -> str:
    path = os.path.join(self.builder_config.manual_dir, "categories.csv")
    return path if os.path.exists(path) else os.path.join(self.builder_config.manual_dir, "fma_metadata", "tracks.csv")

  def _category_of(self) -> dict[str, str] | None:
    path = os.path.join(self.builder_config.manual_dir, "categories.csv")
    if not os.path.exists(path):
      return None
    return {row["tag"]: row["category"] for _, row in corpora._csv_rows(path, ("tag", "category"))}  # pylint: disable=protected-access

  def _tracks(self):
    """(line, track id, split, [genre title]) of the subset's tracks, in file order."""
    (columns, rows), genres = self._metadata()
    subset, top = parse_variant(self.builder_config.variant)
    path = os.path.join(self.builder_config.manual_dir, "fma_metadata", "tracks.csv")
    rank = {s: i for i, s in enumerate(SUBSETS)}
    for line, r in rows:
      cell = lambda key: r[columns[key]] if columns[key] < len(r) else ""  # pylint: disable=cell-var-from-loop
      if cell(("set", "subset")) not in rank:
        raise corpora.CorpusError(f"{path} line {line}: ('set', 'subset') is {cell(('set', 'subset'))!r}, not one of "
                                  f"{', '.join(SUBSETS)}")
      if rank[cell(("set", "subset"))] > rank[subset]:
        continue
      if top:
        titles = [cell(("track", "genre_top"))] if cell(("track", "genre_top")) else []
      else:
        try:
          ids = json.loads(cell(("track", "genres_all")) or "[]")
        except ValueError:
          raise corpora.CorpusError(f"{path} line {line}: ('track', 'genres_all') is "
                                    f"{cell(('track', 'genres_all'))!r}, not a list such as [21, 811]") from None
        titles = [genres.get(g, f"unknown genre id {g}") for g in ids]
      yield line, r[0], cell(("set", "split")), titles

  def vocab(self):
    category_of = self._category_of()
    used = sorted({t for *_, titles in self._tracks() for t in titles if not t.startswith("unknown genre id")})
    if category_of is None:
      return self._checked_vocab({"genre": used}, self.category_source())
    return self._checked_vocab(corpora.grouped((t, category_of[t]) for t in used if t in category_of),
                               self.category_source())

  def rows(self, report, skipped):
    root = self.builder_config.manual_dir
    subset, _ = parse_variant(self.builder_config.variant)
    audio = os.path.join(root, f"fma_{subset}")
    if not os.path.isdir(audio):
      raise corpora.CorpusError(f"{audio} is missing: unpack fma_{subset}.zip into --manual_dir")
    out = []
    for line, tid, split, titles in self._tracks():
      at = f"tracks.csv line {line}"
      if split not in SPLITS:
        self._skip(f"{at}: {tid}", f"unknown split {split!r}")
        continue
      try:
        name = f"{int(tid):06d}"
      except ValueError:
        raise corpora.CorpusError(f"{os.path.join(root, 'fma_metadata', 'tracks.csv')} line {line}: the track id "
                                  f"{tid!r} is not a number") from None
      file = os.path.join(audio, name[:3], f"{name}.mp3")
      if not os.path.isfile(file):
        self._skip(f"{at}: {os.path.relpath(file, root)}", "audio file missing")
        continue
      tags = self._tags_by_category(titles, at)
      if not tags:
        self._skip(f"{at}: {tid}", "no tags")
        continue
      out.append(corpora.Row(f"fma_{name}", file, tags, SPLITS[split]))
    return out
