"""The backbone's max-pooling against a brute-force numpy reference and XLA's reduce_window."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax import models


def _numpy_pool(x, window, stride):
  """Max-pooling from the definition: -inf padding of window // 2 on each side when
  window != stride (as PyTorch's MaxPool2d(window, stride, window // 2)); none otherwise."""
  n, h, w, c = x.shape
  if window == stride:
    ho, wo, pad = h // window, w // window, 0
  else:
    pad = window // 2
    ho, wo = (h + 2 * pad - window) // stride + 1, (w + 2 * pad - window) // stride + 1
  xp = np.full((n, h + 2 * pad, w + 2 * pad, c), -np.inf, np.float32)
  xp[:, pad: pad + h, pad: pad + w] = x
  out = np.empty((n, ho, wo, c), np.float32)
  for i in range(ho):
    for j in range(wo):
      out[:, i, j] = xp[:, i * stride: i * stride + window, j * stride: j * stride + window].max(axis=(1, 2))
  return out


@pytest.mark.parametrize("window,stride,shape", [(3, 2, (2, 9, 8, 3)), (3, 2, (2, 8, 7, 3)), (3, 1, (2, 6, 5, 4)),
                                                 (2, 2, (2, 7, 9, 3)), (5, 2, (1, 11, 10, 2))])
def test_max_pool(window, stride, shape):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(models.max_pool(jnp.asarray(x), window, stride)),
                                _numpy_pool(x, window, stride))
  # Its gradient equals reduce_window's (no ties in random data: all of it goes to the max).
  p = window // 2 if window != stride else 0
  pad = ((0, 0), (p, p), (p, p), (0, 0))
  ref = lambda v: jax.lax.reduce_window(v, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, stride, stride, 1), pad)
  probe = np.random.default_rng(1).normal(size=_numpy_pool(x, window, stride).shape).astype(np.float32)
  g = jax.grad(lambda v: jnp.sum(models.max_pool(v, window, stride) * probe))(jnp.asarray(x))
  g_ref = jax.grad(lambda v: jnp.sum(ref(v) * probe))(jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), atol=1e-6)


@pytest.mark.parametrize("head,subdense", [("relu", False), ("relu", True), ("linear", False), ("linear", True)])
def test_heads_parameter_shapes_and_relu_embedding(head, subdense):
  """The paper's head: the embedding is ReLU(Dense(D)) of the pooled backbone features (2 x
  features: mean and max), or four ReLU sub-dense layers; nothing after it but the tag
  weights. The linear head has a hidden ReLU layer, then a linear embedding."""
  dims, features, hidden, tags = (8, 4, 6, 2), 16, 12, 7
  m = models.MusicEncoder(num_tags=tags, subspace_dims=dims, head=head, subdense=subdense, stem_features=8,
                          features=features, blocks=1, hidden=hidden)
  x = jax.random.normal(jax.random.key(0), (3, 24, 16, 1))
  variables = m.init(jax.random.key(1), x)
  p = variables["params"]
  shapes = jax.tree.map(lambda a: a.shape, p)
  source = hidden if head == "linear" else 2 * features
  if subdense:
    assert [shapes[f"subdense_{i}"]["kernel"] for i in range(4)] == [(source, d) for d in dims]
    assert "embedding" not in shapes
  else:
    assert shapes["embedding"]["kernel"] == (source, sum(dims)) and "subdense_0" not in shapes
  assert ("Dense_0" in shapes["backbone"]) == (head == "linear")
  assert shapes["tag_weights"] == (sum(dims), tags) and shapes["tag_bias"] == (tags,)
  emb = m.apply(variables, x)
  assert emb.shape == (3, sum(dims))
  if head == "relu":
    assert (emb >= 0).all()
  else:
    assert (emb < 0).any()
