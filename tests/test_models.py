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


def test_non_overlapping_max_pool_gradient_splits_ties_as_jax_does():
  """With ties (a constant region, as silence gives), the 2x2 pooling's gradient is JAX's
  gradient of a max reduction over each patch, bit for bit: an equal share to each tie."""
  x = np.random.default_rng(0).normal(size=(2, 7, 9, 3)).astype(np.float32)
  x[0, :4, :4, 0] = 1.0
  x[1, 2:4, 2:4, 1] = x[1, 2:4, 2:4, 1].max()
  probe = np.random.default_rng(1).normal(size=(2, 3, 4, 3)).astype(np.float32)
  reference = lambda v: v[:, :6, :8].reshape(2, 3, 2, 4, 2, 3).max(axis=(2, 4))
  g = jax.grad(lambda v: jnp.sum(models.max_pool(v, 2, 2) * probe))(jnp.asarray(x))
  g_ref = jax.grad(lambda v: jnp.sum(reference(v) * probe))(jnp.asarray(x))
  np.testing.assert_array_equal(np.asarray(g), np.asarray(g_ref))
  assert np.asarray(g)[0, 0, 0, 0] == probe[0, 0, 0, 0] / 4


@pytest.mark.parametrize("shape,kernel", [((2, 48, 32, 3), 3), ((2, 48, 32, 3), 5), ((2, 13, 10, 3), 3),
                                          ((2, 13, 10, 2), 5), ((1, 7, 8, 2), 5), ((1, 5, 6, 2), 1)])
def test_strided_conv_is_xlas_same_convolution_with_its_gradients(shape, kernel):
  """strided_conv (its own input gradient, from the polyphase sub-kernels) against XLA's
  stride-2 "SAME" convolution and XLA's gradients, odd and even sizes."""
  x = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, shape[-1], 4))
  ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_array_equal(np.asarray(models.strided_conv(x, w)), np.asarray(ref(x, w)))
  probe = jax.random.normal(jax.random.key(2), ref(x, w).shape)
  got = jax.grad(lambda x, w: jnp.sum(models.strided_conv(x, w) * probe), (0, 1))(x, w)
  want = jax.grad(lambda x, w: jnp.sum(ref(x, w) * probe), (0, 1))(x, w)
  for g, r in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-5, atol=1e-5)


def test_strided_conv_module_is_nn_conv():
  """StridedConv holds nn.Conv's variable (same name, shape and initial value) and computes its output."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  x = jax.random.normal(jax.random.key(0), (2, 12, 9, 3))
  ours, theirs = models.StridedConv(5, 3), nn.Conv(5, (3, 3), (2, 2), padding="SAME", use_bias=False)
  v_ours, v_theirs = ours.init(jax.random.key(1), x), theirs.init(jax.random.key(1), x)
  np.testing.assert_array_equal(v_ours["params"]["kernel"], v_theirs["params"]["kernel"])
  np.testing.assert_allclose(ours.apply(v_ours, x), theirs.apply(v_theirs, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("train", [True, False])
def test_stem_is_conv_batch_norm_relu_then_pool(train):
  """The stem (normalised after pooling) against the textbook order: nn.Conv, nn.BatchNorm,
  ReLU, 2x2 max-pool; the same variables, outputs bit for bit, the same running statistics,
  the same parameter gradients; channels with negative and positive scales; odd sizes."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel

  class Textbook(nn.Module):
    @nn.compact
    def __call__(self, x, train):
      x = nn.Conv(6, (5, 5), padding="SAME", use_bias=False)(x)
      return models.max_pool(nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)), 2, 2)

  x = jax.random.normal(jax.random.key(0), (4, 13, 10, 1))
  ours, ref = models.Stem(6), Textbook()
  v = ours.init(jax.random.key(1), x, train=True)
  assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, ref.init(jax.random.key(1), x, train=True))
  params = {**v["params"], "BatchNorm_0": {"scale": jnp.array([1.0, -1.0, 0.5, -2.0, 0.01, 3.0]),
                                            "bias": jnp.array([0.1, -0.2, 0.3, 0.0, 0.5, -1.0])}}
  stats = {"BatchNorm_0": {"mean": jnp.linspace(-0.3, 0.3, 6), "var": jnp.linspace(0.5, 2.0, 6)}}
  probe = jax.random.normal(jax.random.key(2), (4, 6, 5, 6))

  def loss(module, p):
    out, new = module.apply({"params": p, "batch_stats": stats}, x, train=train, mutable=["batch_stats"])
    return jnp.sum(out * probe), (out, new)

  (_, (out, new)), grads = jax.value_and_grad(lambda p: loss(ours, p), has_aux=True)(params)
  (_, (out_ref, new_ref)), grads_ref = jax.value_and_grad(lambda p: loss(ref, p), has_aux=True)(params)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(out_ref))
  jax.tree.map(np.testing.assert_array_equal, new, new_ref)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), grads, grads_ref)
