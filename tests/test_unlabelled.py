"""Unlabelled recordings beside the labelled batches (musicrep_jax/unlabelled.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from musicrep_jax import configlib, errors, unlabelled

SR = 16000


def _folder(tmp_path, n=3, seconds=5.0):
  rng = np.random.default_rng(0)
  for i in range(n):
    t = np.arange(int(seconds * SR)) / SR
    sf.write(tmp_path / f"t{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.01 * rng.normal(size=t.size), SR)
  (tmp_path / "notes.txt").write_text("not audio")
  (tmp_path / "broken.flac").write_bytes(b"these bytes are not audio\n" * 50)
  return tmp_path


def test_excerpt_pairs_come_from_the_folder_and_repeat_by_seed_and_step(tmp_path):
  rec = unlabelled.Recordings(str(_folder(tmp_path)), 3 * SR)
  assert len(rec.tracks) == 3  # the text file is not audio, the broken one is skipped
  a = rec.crops(2, seed=0, step=5)
  assert a.shape == (2, 2, 3 * SR) and a.dtype == np.int16
  assert np.array_equal(a, rec.crops(2, seed=0, step=5))  # a resumed run draws the same
  assert not np.array_equal(a, rec.crops(2, seed=0, step=6))
  for pair in a:  # each excerpt is a slice of one track, both of the same track
    hits = [i for i, tr in enumerate(rec.tracks)
            if all(any(np.array_equal(e, tr[s:s + 3 * SR]) for s in range(0, len(tr) - 3 * SR + 1)) for e in pair)]
    assert len(hits) == 1


def test_a_folder_without_two_tracks_is_refused_in_one_sentence(tmp_path):
  with pytest.raises(errors.ConfigError, match="is not a folder"):
    unlabelled.Recordings(str(tmp_path / "none"), 3 * SR)
  with pytest.raises(errors.ConfigError, match="has 1 readable audio file"):
    unlabelled.Recordings(str(_folder(tmp_path, n=1)), 3 * SR)


def test_a_training_step_adds_the_contrastive_term(tmp_path, smoke_builder):
  from musicrep_jax import train  # pylint: disable=import-outside-toplevel
  config = configlib.load("proxy_dis", "smoke")
  config.unlabelled.folder, config.unlabelled.tracks = str(_folder(tmp_path)), 2
  setup = train.Setup(config, smoke_builder)
  state = setup.init_state(0)
  host = next(setup.epoch_data("train", 0, 0, config.train.batch_size).as_numpy_iterator())
  rng = jax.random.key(1)
  plain = float(setup.loss(state["params"], state["batch_stats"], setup.global_batch(host), rng, True)[0])
  batch = setup.global_batch(setup.with_unlabelled(host, 0))
  loss, (aux, _) = setup.loss(state["params"], state["batch_stats"], batch, rng, True)
  assert float(aux["unlabelled_loss"]) > 0 and float(loss) != plain
  new, metrics = setup.update_fn(state, batch, jnp.float32(1e-3), rng)
  assert np.isfinite(float(metrics["unlabelled_loss"])) and int(new["step"]) == 1
