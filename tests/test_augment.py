"""Training-time augmentation (musicrep_jax/augment.py): each transform against numpy
written from its formula, the identity when nothing is drawn, and a training step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax import augment, configlib, frontend

SR = 16000


def _rng(seed=0):
  return np.random.default_rng(seed)


def test_reverberation_adds_earlier_frames_decaying_60_db_in_rt60_at_the_wet_level():
  power = _rng().uniform(size=(2, 9, 5)).astype(np.float32)
  rt60, wet, frame = np.array([0.3, 0.8]), np.array([-6.0, -np.inf]), 0.03125
  y = np.asarray(augment.reverberate(jnp.asarray(power), jnp.asarray(rt60, jnp.float32),
                                     jnp.asarray(wet, jnp.float32), frame))
  weights = 10.0 ** (-6.0 * np.arange(1, 9) * frame / rt60[0])  # frame k back: 60 dB down at rt60
  weights *= 10 ** (-6 / 10) / weights.sum()
  want = power[0].copy()
  for t in range(9):
    for k in range(1, t + 1):
      want[t] += weights[k - 1] * power[0][t - k]
  np.testing.assert_allclose(y[0], want, rtol=1e-5)
  assert np.array_equal(y[1], power[1])  # no wet part: the identity


def test_noise_is_added_at_the_drawn_snr_and_infinite_snr_is_the_identity():
  x, noise = _rng().normal(size=(2, 8000)) * 0.1, _rng(1).normal(size=(2, 8000))
  y = np.asarray(augment.add_noise(jnp.asarray(x, jnp.float32), jnp.asarray(noise, jnp.float32),
                                   jnp.asarray([20.0, np.inf], jnp.float32)))
  snr = 10 * np.log10(np.mean(x[0] ** 2) / np.mean((y[0] - x[0]) ** 2))
  assert abs(snr - 20.0) < 0.01, snr
  assert np.array_equal(y[1], x[1].astype(np.float32))


def test_gain_and_saturation_follow_their_formulas():
  x = _rng().uniform(-1, 1, size=(2, 100)).astype(np.float32)
  np.testing.assert_allclose(augment.gain(x, jnp.asarray([6.0, -3.0])), x * 10 ** (np.array([[6.0], [-3.0]]) / 20),
                             rtol=1e-6)
  d = np.array([2.0, 4.0], np.float32)
  np.testing.assert_allclose(augment.saturate(x, d), np.tanh(d[:, None] * x) / np.tanh(d[:, None]), rtol=1e-5)


def test_equaliser_curve_is_linear_in_log_frequency_between_its_points():
  power = _rng().uniform(0.5, 2, size=(2, 5, 513)).astype(np.float32)
  gains = _rng(1).uniform(-6, 6, size=(2, 6)).astype(np.float32)
  y = np.asarray(augment.equalise(power, jnp.asarray(gains)))
  anchors = np.log(np.geomspace(1, 512, 6))
  for i in range(2):
    curve = np.interp(np.log(np.maximum(np.arange(513), 1)), anchors, gains[i])
    np.testing.assert_allclose(y[i], power[i] * 10 ** (curve / 10), rtol=1e-4)


@pytest.mark.parametrize("axis", [1, 2])
def test_warp_is_linear_interpolation_holding_the_last_point(axis):
  power = _rng().uniform(size=(2, 7, 11)).astype(np.float32)
  ratio = np.array([1.06, 0.9], np.float32)
  y = np.asarray(augment.warp(jnp.asarray(power), jnp.asarray(ratio), axis))
  for i in range(2):
    m = np.moveaxis(power[i], axis - 1, -1)  # [other, n]
    n = m.shape[-1]
    pos = np.minimum(np.arange(n) / ratio[i], n - 1)
    want = np.stack([np.interp(pos, np.arange(n), row) for row in m])
    np.testing.assert_allclose(np.moveaxis(y[i], axis - 1, -1), want, rtol=1e-5, atol=1e-6)
  same = augment.warp(jnp.asarray(power), jnp.ones(2), axis)
  assert np.array_equal(np.asarray(same), power)


def _front_end(audio, aug):
  return frontend.log_mel(audio, sample_rate=SR, n_fft=1024, hop=500, n_mels=64, augment=aug)


def test_nothing_drawn_is_the_front_end_itself_and_the_defaults_change_it():
  audio = jnp.asarray(_rng().integers(-3000, 3000, size=(4, 48000)), jnp.int16)
  cfg = configlib.base("").augment.to_dict()
  off = {**cfg, "gain_db": 0.0, **{k: 0.0 for k in ("reverb", "noise", "saturate", "eq", "pitch", "tempo")}}
  plain = np.asarray(_front_end(audio, None))
  same = np.asarray(_front_end(audio, augment.draw(jax.random.key(0), 4, off)))
  assert np.array_equal(same, plain)
  changed = np.asarray(_front_end(audio, augment.draw(jax.random.key(0), 4, cfg)))
  assert changed.shape == plain.shape and np.isfinite(changed).all()
  assert np.abs(changed - plain).mean() > 0.05  # each excerpt changed by its own draw
  assert not np.allclose(changed[0] - plain[0], changed[1] - plain[1])


def test_a_training_step_augments_and_evaluation_does_not(data_dir, smoke_builder):
  from musicrep_jax import train  # pylint: disable=import-outside-toplevel
  losses = {}
  for enabled in (False, True):
    config = configlib.load("proxy_dis", "smoke")
    config.augment.enabled = enabled
    setup = train.Setup(config, smoke_builder)
    state = setup.init_state(0)
    batch = setup.global_batch(next(setup.epoch_data("train", 0, 0, config.train.batch_size).as_numpy_iterator()))
    rng = jax.random.key(1)
    losses[enabled] = (float(setup.loss(state["params"], state["batch_stats"], batch, rng, True)[0]),
                       float(setup.loss(state["params"], state["batch_stats"], batch, rng, False)[0]))
    new, metrics = setup.update_fn(state, batch, jnp.float32(1e-3), rng)
    assert np.isfinite(float(metrics["loss"])) and int(new["step"]) == 1
  assert losses[True][0] != losses[False][0]  # training sees augmented audio
  assert losses[True][1] == losses[False][1]  # the validation loss does not
