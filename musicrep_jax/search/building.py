"""Building an index from a folder: which files are read, which are skipped and why,
how an existing index is updated, and what Ctrl-C keeps.

Nothing outside the folder is read: links that lead out of it, folders that cannot be
read, unsupported or undecodable files are skipped and listed with their reason. Every
check that can refuse comes before any decoding; INDEX.lock keeps a second run off the
same index; Ctrl-C keeps what was embedded (rerun to continue). A rebuild that would drop
files the index holds (another or an unmounted folder, files deleted or moved) is refused
unless `replace`.
"""

from __future__ import annotations

import os
import signal
import stat

import numpy as np

from musicrep_jax.data import audio as audio_lib
from musicrep_jax.progress import printable
from musicrep_jax.search.index import Index
from musicrep_jax.search.trained import IndexInterrupted, SearchError


def audio_tree(root: str) -> tuple[list[str], dict[str, str]]:
  """(files, {path: reason}) under `root`, sorted: every file whose real path lies inside
  `root`; folders that cannot be read and links that lead out of `root` are left out and
  named, never passed over in silence (os.walk alone skips both without a word)."""
  real_root = os.path.realpath(root)
  skipped: dict[str, str] = {}

  def unreadable(e: OSError) -> None:
    skipped[e.filename] = f"folder cannot be read ({e.strerror})"

  found = []
  for folder, dirs, names in os.walk(root, onerror=unreadable):
    for d in dirs:
      if os.path.islink(os.path.join(folder, d)):  # os.walk does not enter it: say so
        skipped[os.path.join(folder, d)] = "a link to a folder (not followed: it may lead outside the folder)"
    for n in names:
      full = os.path.join(folder, n)
      real = os.path.realpath(full)
      if os.path.commonpath([real, real_root]) != real_root:
        skipped[full] = f"a link to {real}, outside {root}"
      else:
        found.append(full)
  return sorted(found), skipped


def audio_files(audio_dir: str) -> tuple[list[str], np.ndarray, dict[str, str]]:
  """(audio files, their (size, mtime_ns) [N, 2], {skipped path: reason}) under audio_dir."""
  found, skipped = audio_tree(audio_dir)
  files, stamps = [], []
  for f in found:
    if not audio_lib.is_audio(f):
      skipped[f] = audio_lib.unsupported_reason(f)
      continue
    try:
      st = os.stat(f)
    except OSError as e:  # a dangling link, a file removed meanwhile
      skipped[f] = f"cannot be read ({e.strerror})"
      continue
    if not stat.S_ISREG(st.st_mode):  # opening a named pipe would wait for a writer forever
      skipped[f] = "not a regular file (a named pipe, socket or device)"
      continue
    files.append(f)
    stamps.append((st.st_size, st.st_mtime_ns))
  return files, np.array(stamps, np.int64).reshape(-1, 2), skipped


def build(model, audio_dir: str, path: str, batch_files: int = 16, verbose: bool = True,
          replace: bool = False) -> Index:
  """Indexes every audio file under `audio_dir`; files already in the index at `path`,
  embedded by the same model, with the same size and modification time are not decoded
  again."""
  audio_dir = os.path.abspath(os.path.expanduser(audio_dir))
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(audio_dir):
    raise SearchError(f"--audio={audio_dir} is not a folder")
  if os.path.isdir(path):
    raise SearchError(f"--out={path} is a folder: give a file name, e.g. {path}/music.npz")
  if not os.path.isdir(os.path.dirname(path)):
    raise SearchError(f"--out={path}: the folder {os.path.dirname(path)} does not exist: create it first")
  old = Index.load(path) if os.path.exists(path) else None
  if old is not None and old.workdir != model.workdir:
    raise SearchError(f"{path} was built with the model in {old.workdir}: give another --out, or delete it")
  lock = path + ".lock"
  try:
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
  except FileExistsError:
    raise SearchError(f"another `search index` is writing {path} ({lock} exists): wait for it, or delete "
                      f"{lock} if no other run is") from None
  except OSError as e:
    raise SearchError(f"--out={path} cannot be written ({e.strerror}): give a writable place") from None
  os.close(fd)
  try:
    return _build(model, audio_dir, path, old, batch_files, verbose, replace)
  finally:
    os.remove(lock)


def _build(model, audio_dir, path, old, batch_files, verbose, replace) -> Index:
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  files, stamps, skipped = audio_files(audio_dir)
  dropped = sorted(set(old.files) - set(files)) if old is not None else []
  if dropped and not replace:
    raise SearchError(f"{path} holds {len(dropped)} file(s) that --audio={audio_dir} does not have (e.g. "
                      f"{printable(dropped[0])}): another folder, one not mounted, or files deleted or moved; "
                      "rerun with --replace to drop them from the index (nothing was changed)")
  not_embedded = len(skipped)
  known = {}
  if old is not None:
    if old.model_digest == model.digest:
      known = {f: (tuple(s), e) for f, s, e in zip(old.files, old.stamps, old.embeddings)}
    elif verbose:
      print(f"the model in {model.workdir} changed since {path} was built (step {old.model_step} -> "
            f"{model.step}): embedding every file again", flush=True)
  emb = np.zeros((len(files), len(model.dims)), np.float32)
  done = np.zeros(len(files), bool)
  todo = []
  for i, (f, s) in enumerate(zip(files, stamps)):
    if f in known and known[f][0] == tuple(s):
      emb[i], done[i] = known[f][1], True
    else:
      todo.append(i)
  bar = tqdm(total=len(todo), unit="file", desc="embedding", disable=not verbose or not todo)
  # Ctrl-C sets a flag that the loop reads between files (an exception raised inside a
  # decoder could be caught there): the files embedded so far are saved.
  stop = []
  try:
    previous = signal.signal(signal.SIGINT, lambda *_: stop.append(True))
  except ValueError:  # not the main thread
    previous = None
  try:
    for start in range(0, len(todo), batch_files):
      decoded, rows = [], []
      for i in todo[start: start + batch_files]:
        if stop:
          break
        try:
          decoded.append(audio_lib.decode(files[i]))
          rows.append(i)
        except audio_lib.BadAudio as e:
          skipped[files[i]] = str(e)
      if stop:
        break
      if decoded:
        emb[rows], done[rows] = model.embed(decoded), True
      bar.update(len(todo[start: start + batch_files]))
  finally:
    if previous is not None:
      signal.signal(signal.SIGINT, previous)
  bar.close()
  index = Index(path, [f for f, k in zip(files, done) if k], stamps[done], emb[done], model.dims, model.disentangled,
                model.workdir, skipped, model_step=model.step, model_digest=model.digest, categories=model.categories)
  index.save()
  index.added = int(done[todo].sum()) if todo else 0
  index.not_embedded = len(skipped) - not_embedded
  if stop:
    raise IndexInterrupted(f"interrupted: {len(index.files)} files are in {path} ({index.added} embedded now); "
                           "rerun the same command to embed the rest")
  return index
