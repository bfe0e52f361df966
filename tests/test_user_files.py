"""Every everyday mistake and fault, through the real commands (`main`, `search`, `data`):
the exit status, one sentence naming the file, key or flag, no traceback, and every
byte of what the user already had left as it was. docs/RELIABILITY.md lists the cases.

Each case: (id, command, arguments, expected exit status, text the last line must hold,
the folders that must stay byte-identical). `prepare` functions set a case up in its
own temporary folder; `{run}`, `{music}`, `{index}`... name the shared fixtures.
"""

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, made_once, run_python

pytestmark = pytest.mark.slow  # end-to-end runs of the real commands

MAIN, SEARCH, DATA = "musicrep_jax.main", "musicrep_jax.search", "musicrep_jax.data"


def snapshot(*roots):
  """{path: sha1 of the bytes} of every file under the roots (a link: its target's name)."""
  out = {}
  for root in roots:
    for dirpath, _, names in os.walk(root):
      for n in names:
        p = os.path.join(dirpath, n)
        if os.path.islink(p):
          out[p] = "link:" + os.readlink(p)
        else:
          with open(p, "rb") as f:
            out[p] = hashlib.sha1(f.read()).hexdigest()
  return out


def run(module, *args):
  return run_python("-m", module, *args, check=False)


@pytest.fixture(scope="module")
def world(data_dir, tmp_path_factory):
  """A trained smoke run, a folder of music, its index, and a tagged_folder corpus: made
  once per session, by the first test worker to get here (the others wait for it)."""
  root = made_once(tmp_path_factory, "world", lambda root: _make_world(root, data_dir))
  return {"root": root, "data": data_dir, "run": root / "run", "music": root / "music", "index": root / "music.npz",
          "other_run": root / "other_run", "corpus": root / "corpus"}


def _make_world(root, data_dir):
  w = {"root": root, "data": data_dir, "run": root / "run", "music": root / "music", "index": root / "music.npz"}
  out = run(MAIN, "--config=configs/proxy_dis.py:smoke", f"--workdir={w['run']}", f"--config.data_dir={data_dir}")
  assert out.returncode == 0, out.stderr[-2000:]
  w["other_run"] = root / "other_run"  # the same model trained one more epoch: other weights (its newest
  shutil.copytree(w["run"], w["other_run"])  # checkpoint: the best by validation quality may be the first run's)
  out = run(MAIN, "--config=configs/proxy_dis.py:smoke", f"--workdir={w['other_run']}", f"--config.data_dir={data_dir}",
            "--config.train.max_epochs=4", "--config.eval.checkpoint=latest")
  assert out.returncode == 0, out.stderr[-2000:]
  os.makedirs(w["music"])
  rng = np.random.default_rng(0)
  for i in range(4):
    t = np.arange(16000 * 4) / 16000
    sf.write(w["music"] / f"song{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 90 * i) * t) + 0.01 * rng.normal(size=len(t)),
             16000)
  out = run(SEARCH, "index", f"--workdir={w['run']}", f"--audio={w['music']}", f"--out={w['index']}")
  assert out.returncode == 0, out.stderr[-2000:]
  corpus = root / "corpus"
  os.makedirs(corpus)
  for i in range(12):
    t = np.arange(16000 * 4) / 16000
    sf.write(corpus / f"c{i}.wav", 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t), 16000)
  (corpus / "categories.csv").write_text("tag,category\nrock,genre\njazz,genre\nhappy,mood\nguitar,instrument\n"
                                         "80s,era\n")
  (corpus / "tags.csv").write_text("path,tags,split\n" + "".join(
      f"c{i}.wav,{'rock' if i % 2 else 'jazz'};happy;guitar;80s,{['train', 'validation', 'test'][i % 3]}\n"
      for i in range(12)))


def _copy(w, tmp, name="run"):
  dst = tmp / name
  shutil.copytree(w[name], dst)
  return dst


def _corrupt_arrays(step_dir):
  for dirpath, _, names in os.walk(step_dir / "state"):
    for n in names:
      if "ocdbt" in dirpath and "/d" in dirpath:
        (open(os.path.join(dirpath, n), "wb")).write(b"\0" * 64)


def main_args(w, workdir, *extra, config="proxy_dis.py:smoke"):
  return (f"--config=configs/{config}", f"--workdir={workdir}", f"--config.data_dir={w['data']}", *extra)


# Each prepare(w, tmp) returns (command, args, folders to keep byte-identical).
def other_width(w, tmp):
  return MAIN, main_args(w, w["run"], "--config.model.features=32"), [w["run"]]


def other_loss(w, tmp):
  return MAIN, main_args(w, w["run"], config="triplet.py:smoke"), [w["run"]]


def other_dataset(w, tmp):
  return MAIN, main_args(w, w["run"], "--config.dataset=synth_music:smoke_decorrelated"), [w["run"], w["data"]]


def workdir_is_a_file(w, tmp):
  (tmp / "f").write_text("x")
  return MAIN, main_args(w, tmp / "f"), [tmp]


def data_dir_is_a_file(w, tmp):
  (tmp / "d").write_text("x")
  return MAIN, ("--config=configs/proxy_dis.py:smoke", f"--workdir={tmp / 'run'}", f"--config.data_dir={tmp / 'd'}"), \
      [tmp / "d"]


def unknown_key(w, tmp):
  return MAIN, main_args(w, tmp / "r", "--config.train.nope=1"), []


def unknown_preset(w, tmp):
  return MAIN, main_args(w, tmp / "r", config="proxy_dis.py:huge"), []


def bad_value(w, tmp):
  return MAIN, main_args(w, tmp / "r", "--config.train.learning_rate=-1"), []


def bad_task(w, tmp):
  return MAIN, main_args(w, tmp / "r", "--config.eval.tasks=('retrieval','nope')"), []


def bad_distance(w, tmp):
  return MAIN, main_args(w, tmp / "r", "--config.eval.distance=manhattan"), []


def bad_sampler(w, tmp):
  return MAIN, main_args(w, tmp / "r", "--config.loss.sampler=paper"), []


def subdense_entangled(w, tmp):
  return MAIN, main_args(w, tmp / "r", "--config.model.subdense=True", "--config.loss.disentangled=False"), []


def eval_without_checkpoint(w, tmp):
  return MAIN, main_args(w, tmp / "empty", "--mode=eval"), []


def corrupt_newest(w, tmp):
  run_dir = _copy(w, tmp)
  _corrupt_arrays(run_dir / "checkpoints" / "24")
  return MAIN, main_args(w, run_dir, "--config.train.max_epochs=4"), []


def corrupt_best_meta(w, tmp):
  run_dir = _copy(w, tmp)
  (run_dir / "best" / "24" / "meta" / "metadata").write_text("{not json")
  return MAIN, main_args(w, run_dir, "--mode=eval"), []


def nothing_intact(w, tmp):
  run_dir = _copy(w, tmp)
  for step in os.listdir(run_dir / "checkpoints"):
    _corrupt_arrays(run_dir / "checkpoints" / step)
  return MAIN, main_args(w, run_dir), []


def index_out_missing_folder(w, tmp):
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={w['music']}", f"--out={tmp / 'no' / 'x.npz'}"), []


def index_out_is_folder(w, tmp):
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={w['music']}", f"--out={tmp}"), []


def index_locked(w, tmp):
  index = tmp / "x.npz"
  shutil.copy(w["index"], index)
  (tmp / "x.npz.lock").write_text("")
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={w['music']}", f"--out={index}"), [tmp]


def index_of_other_workdir(w, tmp):
  index = tmp / "x.npz"
  shutil.copy(w["index"], index)
  return SEARCH, ("index", f"--workdir={w['other_run']}", f"--audio={w['music']}", f"--out={index}"), [tmp]


def query_other_model(w, tmp):
  return SEARCH, ("query", f"--index={w['index']}", f"--audio={w['music'] / 'song0.wav'}",
                  f"--workdir={w['other_run']}"), [w["index"].parent]


def query_unindexed_path(w, tmp):
  return SEARCH, ("query", f"--index={w['index']}", "--path=/nope.wav"), []


def query_audio_and_path(w, tmp):
  return SEARCH, ("query", f"--index={w['index']}", "--path=/a.wav", "--audio=/b.wav"), []


def k_zero(w, tmp):
  return SEARCH, ("query", f"--index={w['index']}", f"--path={w['music'] / 'song0.wav'}", "-k", "0"), []


def top_zero(w, tmp):
  return SEARCH, ("tag", f"--workdir={w['run']}", f"--audio={w['music'] / 'song0.wav'}", "--top=0"), []


def nprobe_zero(w, tmp):
  return SEARCH, ("query", f"--index={w['index']}", f"--path={w['music'] / 'song0.wav'}", "--nprobe=0"), []


def sizes_not_numbers(w, tmp):
  return SEARCH, ("bench", "--sizes=ten"), []


def truncated_index(w, tmp):
  data = open(w["index"], "rb").read()
  (tmp / "t.npz").write_bytes(data[: len(data) // 2])
  return SEARCH, ("query", f"--index={tmp / 't.npz'}", "--path=/a.wav"), [tmp]


def foreign_index(w, tmp):
  np.savez(tmp / "f.npz", weights=np.zeros(3))
  return SEARCH, ("query", f"--index={tmp / 'f.npz'}", "--path=/a.wav"), [tmp]


def crafted_version(w, tmp):
  """An index whose version field points outside its folder: refused, nothing created."""
  with np.load(w["index"]) as z:
    fields = dict(z)
  fields["version"] = np.array("../../escaped/name")
  np.savez(tmp / "c.npz", **fields)
  return SEARCH, ("query", f"--index={tmp / 'c.npz'}", f"--path={w['music'] / 'song0.wav'}", "--method=approx"), \
      [tmp, w["root"]]


def index_is_folder(w, tmp):
  return SEARCH, ("query", f"--index={tmp}", "--path=/a.wav"), []


def index_missing(w, tmp):
  return SEARCH, ("query", f"--index={tmp / 'none.npz'}", "--path=/a.wav"), []


def audio_not_a_folder(w, tmp):
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={tmp / 'none'}", f"--out={tmp / 'x.npz'}"), []


def tag_without_run(w, tmp):
  return SEARCH, ("tag", f"--workdir={tmp}", f"--audio={w['music'] / 'song0.wav'}"), []


def tag_unreadable_audio(w, tmp):
  (tmp / "x.mp3").write_bytes(b"these bytes are not audio\n" * 160)  # fixed: random bytes can parse
  return SEARCH, ("tag", f"--workdir={w['run']}", f"--audio={tmp / 'x.mp3'}"), []


def no_command(w, tmp):
  return SEARCH, (), []


def bad_aspect(w, tmp):
  return SEARCH, ("query", f"--index={w['index']}", "--path=/a.wav", "--aspect=tempo"), []


def links_and_junk_are_listed(w, tmp):
  music = tmp / "m"
  shutil.copytree(w["music"], music)
  os.symlink("/nonexistent/a.wav", music / "dangling.wav")
  os.symlink(music, music / "loop")  # a link to its own folder (os.walk does not follow it)
  (music / "notes.txt").write_text("x")
  (music / "broken.flac").write_bytes(b"these bytes are not audio\n" * 120)
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={music}", f"--out={tmp / 'x.npz'}"), [music]


def unknown_dataset(w, tmp):
  return DATA, ("--dataset=nosuch", f"--data_dir={tmp}"), []


def too_small(w, tmp):
  return DATA, ("--dataset=synth_music:large", "--size=3", f"--data_dir={tmp}"), []


def missing_soundfont(w, tmp):
  return DATA, ("--dataset=synth_music:smoke", "--soundfont=/none.sf2", f"--data_dir={tmp}"), []


def corpus_without_manual_dir(w, tmp):
  return DATA, ("--dataset=tagged_folder", f"--data_dir={tmp}"), []


def corpus_manual_dir_missing(w, tmp):
  return DATA, ("--dataset=tagged_folder", f"--manual_dir={tmp / 'none'}", f"--data_dir={tmp}"), []


def _corpus(w, tmp, tags_csv=None, categories_csv=None):
  corpus = tmp / "corpus"
  shutil.copytree(w["corpus"], corpus)
  if tags_csv is not None:
    (corpus / "tags.csv").write_bytes(tags_csv)
  if categories_csv is not None:
    (corpus / "categories.csv").write_bytes(categories_csv)
  return DATA, ("--dataset=tagged_folder", f"--manual_dir={corpus}", f"--data_dir={tmp / 'tfds'}"), [corpus]


def csv_other_columns(w, tmp):
  return _corpus(w, tmp, tags_csv=b"file,labels\nc0.wav,rock\n")


def csv_short_row(w, tmp):
  return _corpus(w, tmp, tags_csv=b"path,tags,split\nc0.wav\n")


def categories_bad_category(w, tmp):
  return _corpus(w, tmp, categories_csv=b"tag,category\nrock,Mood/Theme\n")


def csv_with_bom(w, tmp):
  text = (w["corpus"] / "tags.csv").read_bytes()
  return _corpus(w, tmp, tags_csv=b"\xef\xbb\xbf" + text)


def corpus_parent_path(w, tmp):
  (tmp / "outside.wav").write_bytes((w["corpus"] / "c0.wav").read_bytes())
  text = (w["corpus"] / "tags.csv").read_text() + "../outside.wav,rock;happy;guitar;80s,train\n"
  return _corpus(w, tmp, tags_csv=text.encode())


def corpus_absolute_path(w, tmp):
  text = (w["corpus"] / "tags.csv").read_text() + f"{w['corpus'] / 'c0.wav'},rock;happy;guitar;80s,train\n"
  return _corpus(w, tmp, tags_csv=text.encode())


def corpus_link_out(w, tmp):
  module, args, keep = _corpus(w, tmp)
  (tmp / "outside.wav").write_bytes((w["corpus"] / "c0.wav").read_bytes())
  os.symlink(tmp / "outside.wav", tmp / "corpus" / "inside.wav")
  tags = tmp / "corpus" / "tags.csv"
  tags.write_text(tags.read_text() + "inside.wav,rock;happy;guitar;80s,train\n")
  return module, args, keep


def corpus_two_spellings_two_splits(w, tmp):
  text = (w["corpus"] / "tags.csv").read_text() + "./c0.wav,rock;happy;guitar;80s,test\n"  # c0 is in train
  return _corpus(w, tmp, tags_csv=text.encode())


def corpus_two_spellings_one_split(w, tmp):
  text = (w["corpus"] / "tags.csv").read_text() + "./c0.wav,jazz;happy;guitar;80s,train\n"
  return _corpus(w, tmp, tags_csv=text.encode())


def corpus_category_left_out(w, tmp):
  return _corpus(w, tmp, categories_csv=b"tag,category\nrock,genre\njazz,genre\nhappy,mood\n80s,era\n")


def corpus_category_without_tracks(w, tmp):
  categories = (w["corpus"] / "categories.csv").read_bytes() + b"polka,style\n"
  return _corpus(w, tmp, categories_csv=categories)


def corpus_unknown_tag_counted(w, tmp):
  text = (w["corpus"] / "tags.csv").read_text().replace(";80s,", ";80s;polka,")
  return _corpus(w, tmp, tags_csv=text.encode())


def _index_copy(w, tmp):
  shutil.copy(w["index"], tmp / "x.npz")
  return tmp / "x.npz"


def reindex_empty_folder(w, tmp):
  index = _index_copy(w, tmp)
  os.makedirs(tmp / "empty")
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={tmp / 'empty'}", f"--out={index}"), [index]


def reindex_other_folder(w, tmp):
  index = _index_copy(w, tmp)
  os.makedirs(tmp / "other")
  shutil.copy(w["music"] / "song0.wav", tmp / "other" / "new.wav")
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={tmp / 'other'}", f"--out={index}"), [index, tmp / "other"]


def reindex_replace(w, tmp):
  index = _index_copy(w, tmp)
  os.makedirs(tmp / "empty")
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={tmp / 'empty'}", f"--out={index}", "--replace"), []


def linked_subfolder_listed(w, tmp):
  music = tmp / "m"
  shutil.copytree(w["music"], music)
  os.makedirs(tmp / "elsewhere")
  shutil.copy(w["music"] / "song0.wav", tmp / "elsewhere" / "far.wav")
  os.symlink(tmp / "elsewhere", music / "linked")
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={music}", f"--out={tmp / 'x.npz'}"), [music]


def linked_file_outside_listed(w, tmp):
  music = tmp / "m"
  shutil.copytree(w["music"], music)
  shutil.copy(w["music"] / "song0.wav", tmp / "far.wav")
  os.symlink(tmp / "far.wav", music / "near.wav")
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={music}", f"--out={tmp / 'x.npz'}"), [music]


def _approx_query(w, tmp, ann):
  """A query of the approximate index of a copy of the shared index, its INDEX.ann set up by `ann`."""
  index = _index_copy(w, tmp)
  keep = ann(tmp, index)
  return SEARCH, ("query", f"--index={index}", f"--path={w['music'] / 'song0.wav'}", "--method=approx", "-k", "2"), keep


def ann_is_a_link(w, tmp):
  def ann(tmp, index):
    os.makedirs(tmp / "users")
    (tmp / "users" / "all-notes.txt").write_text("mine")
    os.symlink(tmp / "users", str(index) + ".ann")
    return [tmp / "users"]
  return _approx_query(w, tmp, ann)


def ann_is_a_file(w, tmp):
  def ann(tmp, index):
    (tmp / "x.npz.ann").write_text("mine")
    return [tmp / "x.npz.ann"]
  return _approx_query(w, tmp, ann)


def ann_corrupt_is_rebuilt(w, tmp):
  def ann(tmp, index):
    import numpy as np  # pylint: disable=import-outside-toplevel,redefined-outer-name,reimported
    version = str(np.load(index)["version"])
    os.makedirs(str(index) + ".ann")
    (tmp / "x.npz.ann" / f"all-{version}.faiss").write_bytes(b"not faiss")
    (tmp / "x.npz.ann" / "all-notes.txt").write_text("mine")
    return []
  return _approx_query(w, tmp, ann)


def csv_utf16(w, tmp):
  return _corpus(w, tmp, tags_csv=(w["corpus"] / "tags.csv").read_text().encode("utf-16"))


def csv_latin1(w, tmp):
  text = (w["corpus"] / "tags.csv").read_text().replace("happy", "fröhlich")
  return _corpus(w, tmp, tags_csv=text.encode("latin-1"),
                 categories_csv=(w["corpus"] / "categories.csv").read_text().replace("happy", "fröhlich").encode())


def config_syntax_error(w, tmp):
  (tmp / "bad.py").write_text("def get_config(arg=None):\n  return (\n")
  return MAIN, (f"--config={tmp / 'bad.py'}", f"--workdir={tmp / 'run'}"), [tmp]


def config_missing(w, tmp):
  return MAIN, (f"--config={tmp / 'nope.py'}", f"--workdir={tmp / 'run'}"), [tmp]


def eval_mistyped_workdir(w, tmp):
  return MAIN, main_args(w, tmp / "typo", "--mode=eval"), [tmp]


def _read_only(*folders):
  for folder in folders:
    for dirpath, _, names in os.walk(folder):
      for n in names:
        os.chmod(os.path.join(dirpath, n), 0o444)
      os.chmod(dirpath, 0o555)


def read_only_eval(w, tmp):
  run_dir = _copy(w, tmp)
  _read_only(run_dir)
  return MAIN, main_args(w, run_dir, "--mode=eval"), [run_dir]


def read_only_resume(w, tmp):
  run_dir = _copy(w, tmp)
  _read_only(run_dir)
  return MAIN, main_args(w, run_dir, "--config.train.max_epochs=4"), [run_dir]


def workdir_under_read_only_parent(w, tmp):
  os.makedirs(tmp / "shared")
  _read_only(tmp / "shared")
  return MAIN, main_args(w, tmp / "shared" / "runs" / "mine"), [tmp / "shared"]


def index_into_read_only_folder(w, tmp):
  os.makedirs(tmp / "ro")
  _read_only(tmp / "ro")
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={w['music']}", f"--out={tmp / 'ro' / 'x.npz'}"), \
      [tmp / "ro"]


def ann_in_read_only_folder(w, tmp):
  def ann(tmp, index):
    _read_only(tmp)
    return [tmp]
  return _approx_query(w, tmp, ann)


def ann_foreign_is_rebuilt(w, tmp):
  def ann(tmp, index):
    import faiss  # pylint: disable=import-outside-toplevel
    version = str(np.load(index)["version"])
    os.makedirs(str(index) + ".ann")
    faiss.write_index(faiss.IndexFlatIP(3), str(tmp / "x.npz.ann" / f"all-{version}.faiss"))  # valid, not ours
    return []
  return _approx_query(w, tmp, ann)


def full_disk_during_index(w, tmp):
  """The disk fills while the index is saved (a 1-KB file-size limit on the command makes
  every larger write fail, as a full disk or a quota does): the old index stays as it was."""
  index = _index_copy(w, tmp)
  music = tmp / "m"
  shutil.copytree(w["music"], music)
  shutil.copy(w["music"] / "song0.wav", music / "new.wav")
  return SEARCH, ("index", f"--workdir={w['run']}", f"--audio={music}", f"--out={index}", "--replace"), [tmp]


def _run_copy(w, tmp, edit):
  run_dir = _copy(w, tmp)
  edit(run_dir)
  return SEARCH, ("tag", f"--workdir={run_dir}", f"--audio={w['music'] / 'song0.wav'}"), [run_dir]


def run_config_unknown_key(w, tmp):
  def edit(run_dir):
    config = __import__("json").loads((run_dir / "config.json").read_text())
    config["train"]["nope"] = 1
    (run_dir / "config.json").write_text(__import__("json").dumps(config))
  return _run_copy(w, tmp, edit)


def run_tags_malformed(w, tmp):
  return _run_copy(w, tmp, lambda run_dir: (run_dir / "tags.json").write_text('{"genre": ["rock",'))


def run_tags_hand_edited(w, tmp):
  return _run_copy(w, tmp, lambda run_dir: (run_dir / "tags.json").write_text('{"genre": "rock", "mood": []}'))


CASES = [  # id, prepare, exit status, text of the last line ("" when the command succeeds)
    ("resume with another width", other_width, 2, "model/features: 16 -> 32"),
    ("resume with another loss", other_loss, 2, "loss/name: 'proxy' -> 'triplet'"),
    ("resume with another dataset", other_dataset, 2, "config.dataset='synth_music:smoke'"),
    ("workdir is a file", workdir_is_a_file, 2, "is a file"),
    ("data_dir is a file", data_dir_is_a_file, 2, "is a file: give a folder"),
    ("unknown config key", unknown_key, 2, "--config.train.nope=1 names a config key that does not exist"),
    ("unknown preset", unknown_preset, 2, "unknown preset 'huge'"),
    ("negative learning rate", bad_value, 2, "config.train.learning_rate=-1.0 must be positive"),
    ("unknown evaluation task", bad_task, 2, "config.eval.tasks names 'nope'"),
    ("unknown distance", bad_distance, 2, "config.eval.distance='manhattan' is unknown"),
    ("paper sampler for a proxy loss", bad_sampler, 2, "config.loss.sampler='paper' exists for triplet"),
    ("sub-dense heads without disentanglement", subdense_entangled, 2, "config.model.subdense=True needs"),
    ("evaluate a run that has no checkpoint", eval_without_checkpoint, 2, "holds no checkpoint"),
    ("newest checkpoint corrupt: resume from the older one", corrupt_newest, 0, "eval:"),
    ("best checkpoint's metadata corrupt: evaluate the newest", corrupt_best_meta, 0, "eval:"),
    ("every checkpoint corrupt", nothing_intact, 2, "no intact checkpoint in"),
    ("evaluate a read-only run", read_only_eval, 0, "eval:"),
    ("index into a missing folder", index_out_missing_folder, 2, "does not exist: create it first"),
    ("index --out is a folder", index_out_is_folder, 2, "is a folder: give a file name"),
    ("two index runs on one file", index_locked, 2, "x.npz.lock exists"),
    ("index built by another run", index_of_other_workdir, 2, "was built with the model in"),
    ("query with another model", query_other_model, 2, "was embedded by another model"),
    ("query a path that is not indexed", query_unindexed_path, 2, "/nope.wav is not in"),
    ("query with --audio and --path", query_audio_and_path, 2, "give exactly one of --audio"),
    ("-k 0", k_zero, 2, "--k=0 must be 1 or more"),
    ("--top=0", top_zero, 2, "--top=0 must be 1 or more"),
    ("--nprobe=0", nprobe_zero, 2, "--nprobe=0 must be 1 or more"),
    ("--sizes not numbers", sizes_not_numbers, 2, "take whole numbers"),
    ("truncated index file", truncated_index, 2, "is not an index written by"),
    ("foreign .npz as index", foreign_index, 2, "is not an index written by"),
    ("index version crafted to escape its folder", crafted_version, 2, "is inconsistent"),
    ("index is a folder", index_is_folder, 2, "is a folder: give the index file"),
    ("index file missing", index_missing, 2, "does not exist: build it"),
    ("--audio folder missing", audio_not_a_folder, 2, "is not a folder"),
    ("tag with a folder that holds no run", tag_without_run, 2, "config.json is missing"),
    ("tag an unreadable file", tag_unreadable_audio, 2, "x.mp3: not a readable audio file"),
    ("search without a command", no_command, 2, "give one command"),
    ("unknown aspect", bad_aspect, 2, "--aspect='tempo' is unknown for this model: choose one of all, genre"),
    ("dangling link, link loop, junk and a broken file in the folder", links_and_junk_are_listed, 0,
     "skipped"),
    ("unknown dataset", unknown_dataset, 2, "unknown dataset 'nosuch'"),
    ("--size too small", too_small, 2, "--size=3 is too small"),
    ("soundfont missing", missing_soundfont, 2, "--soundfont=/none.sf2 does not exist"),
    ("corpus without --manual_dir", corpus_without_manual_dir, 2, "pass --manual_dir"),
    ("corpus --manual_dir missing", corpus_manual_dir_missing, 2, "is not a folder"),
    ("tags.csv with other column names", csv_other_columns, 2, "it needs path, tags"),
    ("tags.csv with a short row", csv_short_row, 2, "line 2 has fewer fields"),
    ("categories.csv with a category name that is not a word", categories_bad_category, 2,
     "the category name 'Mood/Theme' must be a lowercase word"),
    ("tags.csv with a byte-order mark", csv_with_bom, 0, "ready in"),
    ("tags.csv path through '..'", corpus_parent_path, 2, "outside --manual_dir"),
    ("tags.csv absolute path", corpus_absolute_path, 2, "resolves to"),
    ("tags.csv names a link that leads out", corpus_link_out, 2, "outside --manual_dir"),
    ("one file spelled two ways in two splits", corpus_two_spellings_two_splits, 2, "in both train and test"),
    ("one file spelled two ways in one split", corpus_two_spellings_one_split, 0, "duplicate track id: 1"),
    ("a category left out of categories.csv: its labels are counted", corpus_category_left_out, 0,
     "left out 12 label(s)"),
    ("a category of categories.csv whose tags no training track has", corpus_category_without_tracks, 2,
     "has a tag of the category 'style'"),
    ("tags missing from categories.csv are counted", corpus_unknown_tag_counted, 0, "left out 12 label(s)"),
    ("re-index an empty folder over a full index", reindex_empty_folder, 2, "rerun with --replace"),
    ("re-index another folder over an index", reindex_other_folder, 2, "holds 4 file(s) that --audio="),
    ("re-index with --replace", reindex_replace, 0, "0 files (0 embedded now)"),
    ("a linked sub-folder is listed, not passed over", linked_subfolder_listed, 0, "a link to a folder"),
    ("a link to a file outside the folder is listed", linked_file_outside_listed, 0, "outside"),
    ("INDEX.ann is a link to a user's folder", ann_is_a_link, 2, "is a link: it must be the index's own folder"),
    ("INDEX.ann is a file", ann_is_a_file, 2, "is not a folder"),
    ("a corrupt approximate index of ours is rebuilt", ann_corrupt_is_rebuilt, 0, "most similar"),
    ("tags.csv in UTF-16", csv_utf16, 2, "is UTF-16 (it starts with a UTF-16 byte-order mark)"),
    ("tags.csv in Latin-1", csv_latin1, 2, "is not UTF-8: Latin-1 or another 8-bit encoding, probably (byte"),
    ("a config file with a syntax error", config_syntax_error, 2, "has a syntax error at line 2"),
    ("a config file that does not exist", config_missing, 2, "nope.py: the file does not exist"),
    ("--mode=eval on a mistyped workdir writes nothing", eval_mistyped_workdir, 2, "(nothing was written)"),
    ("resume a read-only run", read_only_resume, 2, "is read-only for this user"),
    ("a workdir under a read-only folder", workdir_under_read_only_parent, 2,
     "cannot be created: " ),
    ("index into a read-only folder", index_into_read_only_folder, 2, "cannot be written (Permission denied)"),
    ("approximate query beside a read-only index", ann_in_read_only_folder, 0, "most similar"),
    ("a valid approximate index that is not this index's is rebuilt", ann_foreign_is_rebuilt, 0, "most similar"),
    ("the disk fills while an index is saved", full_disk_during_index, 2,
     "could not be written (File too large): free some space, or give another --out; the index there is as it was"),
    ("an unknown key in a run's config.json", run_config_unknown_key, 2, "has the key 'train.nope', which this"),
    ("a run's tags.json is not JSON", run_tags_malformed, 2, "tags.json is not valid JSON (line 1, column 19"),
    ("a run's tags.json edited into another shape", run_tags_hand_edited, 2, "tags.json is not a tag vocabulary"),
]
AS_NOBODY = {read_only_eval, read_only_resume, workdir_under_read_only_parent, index_into_read_only_folder,
             ann_in_read_only_folder}  # permissions: root ignores them


@pytest.mark.parametrize("name,prepare,status,text", CASES, ids=[c[0] for c in CASES])
def test_case(world, tmp_path, name, prepare, status, text):
  module, args, keep = prepare(world, tmp_path)
  before = snapshot(*keep)
  if prepare in AS_NOBODY:
    out = _as_nobody(world, tmp_path, module, args)
  elif prepare is full_disk_during_index:  # writes past 1 KB fail with EFBIG
    out = run_python("-m", module, *args, env={"JAX_ENABLE_COMPILATION_CACHE": "false"}, fsize=1024, check=False)
  else:
    out = run(module, *args)
  assert out.returncode == status, (name, out.returncode, out.stderr[-3000:])
  assert "Traceback" not in out.stderr, (name, out.stderr[-3000:])  # (nor a recovered run's failed reads)
  if status == 2:
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and text in last, (name, last)
  elif status == 1:  # absl's own flag errors: the flag is named
    assert text in out.stderr, (name, out.stderr[-2000:])
  else:
    assert text in out.stdout, (name, out.stdout[-2000:])
  assert snapshot(*keep) == before, name  # nothing the user had was changed
  if prepare is crafted_version:
    assert not os.path.exists(world["root"].parent / "escaped")
  if prepare is eval_mistyped_workdir:  # a failed command leaves no folder behind
    assert not os.path.exists(tmp_path / "typo")
  if prepare is full_disk_during_index:  # no temporary file left behind
    assert sorted(os.listdir(tmp_path)) == ["m", "x.npz"], os.listdir(tmp_path)
  if prepare is ann_in_read_only_folder:
    assert "could not be kept in" in out.stderr, out.stderr[-2000:]
  if prepare is ann_corrupt_is_rebuilt:  # only our own file was replaced
    assert (tmp_path / "x.npz.ann" / "all-notes.txt").read_text() == "mine"


def _as_nobody(world, tmp_path, module, args):
  """Runs the command as user nobody (root ignores permissions), with a cache it may write."""
  cache = tmp_path.parent / f"{tmp_path.name}_nobody_cache"
  os.makedirs(cache)
  os.chmod(cache, 0o777)
  for path in (tmp_path, world["data"], world["root"]):  # nobody must reach them (pytest's folders are 0700)
    for parent in [p for p in __import__("pathlib").Path(path).parents if str(p).startswith("/tmp/")] + [path]:
      os.chmod(parent, os.stat(parent).st_mode | 0o055)
  as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
  env = {"MUSICREP_JAX_CACHE": str(cache), "HOME": str(cache), "MPLCONFIGDIR": str(cache)}
  probe = subprocess.run([*as_nobody, "-c", "import musicrep_jax"], cwd=REPO, env={**os.environ, **env},
                         capture_output=True)
  if probe.returncode != 0:
    pytest.skip(f"user nobody cannot run this checkout's Python (the permission cases need it): {probe.stderr[-200:]}")
  return run_python("-m", module, *args, env=env, user=65534, check=False)


def test_edited_corpus_is_rebuilt_not_reported_stale(world, tmp_path):
  module, args, _ = _corpus(world, tmp_path)
  first = run(module, *args)
  assert first.returncode == 0 and "train: 4" in first.stdout, first.stdout
  tags = tmp_path / "corpus" / "tags.csv"
  tags.write_text(tags.read_text().replace(",test\n", ",train\n"))  # four test tracks become training tracks
  second = run(module, *args)
  assert second.returncode == 0 and "(train: 8, validation: 4;" in second.stdout, second.stdout


# `search index` as its command line runs it, with one change: the 40th file's decoding
# first sends the process SIGINT (a Ctrl-C in the third batch of 16, on any machine speed).
CTRL_C_AT_40 = """
import os, runpy, signal, sys
from musicrep_jax.data import audio
decode, calls = audio.decode, [0]
def decode_after_ctrl_c_at_40(path, **kwargs):
  calls[0] += 1
  if calls[0] == 40:
    os.kill(os.getpid(), signal.SIGINT)
  return decode(path, **kwargs)
audio.decode = decode_after_ctrl_c_at_40
sys.argv[0] = "search"
runpy.run_module("musicrep_jax.search", run_name="__main__")
"""


def test_ctrl_c_during_index_keeps_what_was_embedded_and_a_named_pipe_is_skipped(world, tmp_path):
  """Ctrl-C in the third batch: the index keeps the two batches embedded, and the rerun
  embeds the rest. A named pipe among the files (opening it would wait for a writer
  forever) is listed as skipped, not opened."""
  music = tmp_path / "music"
  os.makedirs(music)
  t = np.arange(16000 * 4) / 16000
  for i in range(64):
    if i == 20:
      os.mkfifo(music / f"s{i:02d}.wav")
    else:
      sf.write(music / f"s{i:02d}.wav", 0.2 * np.sin(2 * np.pi * (100 + 13 * i) * t), 16000)
  index = tmp_path / "x.npz"
  args = ("index", f"--workdir={world['run']}", f"--audio={music}", f"--out={index}")
  out = run_python("-c", CTRL_C_AT_40, *args, check=False)
  assert out.returncode == 130, out.stderr[-2000:]
  assert "interrupted: 32 files are in" in out.stderr and "rerun the same command" in out.stderr, out.stderr[-2000:]
  assert "Traceback" not in out.stderr and not os.path.exists(str(index) + ".lock")
  again = run(SEARCH, *args)
  assert ": 63 files (31 embedded now)" in again.stdout, again.stdout
  assert "s20.wav: not a regular file" in again.stdout, again.stdout


def test_file_names_cannot_forge_plain_text_output_on_any_locale(world, tmp_path):
  music = tmp_path / "m"
  os.makedirs(music)
  song = (world["music"] / "song0.wav").read_bytes()
  forged = "a\n  +1.000  passwd.wav"
  (music / forged).write_bytes(song)
  os.makedirs(os.fsencode(music / "bytes"))
  (open(os.fsencode(music / "bytes") + b"/caf\xe9.wav", "wb")).write(song)  # not UTF-8
  index = tmp_path / "x.npz"
  out = run(SEARCH, "index", f"--workdir={world['run']}", f"--audio={music}", f"--out={index}")
  assert out.returncode == 0, out.stderr[-2000:]
  strict = {"PYTHONIOENCODING": "ascii:strict", "LC_ALL": "C"}
  for path in (str(music / forged), os.fsdecode(os.fsencode(music / "bytes") + b"/caf\xe9.wav")):
    q = subprocess.run([sys.executable, "-m", SEARCH, "query", f"--index={index}", "--path=" + path, "-k", "2"],
                       cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **strict}, capture_output=True,
                       timeout=600)
    assert q.returncode == 0 and b"Traceback" not in q.stderr, q.stderr[-2000:]
    lines = q.stdout.decode("ascii").splitlines()
    # The heading (naming the query, left out of the answer) and the other file: no line forged by a name.
    assert len(lines) == 2, lines
    assert any("a\\n  +1.000  passwd.wav" in l for l in lines) and any("caf\\xe9.wav" in l for l in lines)
    j = subprocess.run([sys.executable, "-m", SEARCH, "query", f"--index={index}", "--path=" + path, "-k", "2",
                        "--json"], cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True,
                       timeout=600)
    hits = __import__("json").loads(j.stdout)  # valid JSON, the names kept exactly
    assert {h["path"] for h in hits} <= {str(music / forged), os.fsdecode(os.fsencode(music / "bytes") + b"/caf\xe9.wav")}
