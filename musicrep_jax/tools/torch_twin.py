"""A PyTorch twin of musicrep_jax's model and train step, for speed comparisons only.

Not part of the library (nothing in musicrep_jax imports it outside `perf --vs-torch`).
The same maths as `musicrep_jax.models` / `frontend` / `losses`: log-mel front end in
the step, the Inception backbone with TF-style "SAME" padding, the dense embedding
head, and the proxy, triplet, every-triplet, multi-similarity and supervised contrastive
losses (each with its disentangled variant by the same masks); Adam. Written the idiomatic way:
channels-last convolutions (oneDNN on CPU, cuDNN on GPU), eager by default, optionally
`torch.compile`. `load_flax` copies a Flax variable tree into it, so both sides start
from the same weights and `tests/test_torch_twin.py` can check they compute the same
embedding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOG_MEAN, LOG_STD, EPS = 0.2, 0.25, 1e-12


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
  total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


class ConvBN(nn.Module):
  """Convolution with "SAME" padding, batch norm, ReLU (Flax ConvBN)."""

  def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1):
    super().__init__()
    self.kernel, self.stride = kernel, stride
    symmetric = kernel // 2 if stride == 1 else 0
    self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=symmetric, bias=False)
    self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)  # Flax momentum 0.9

  def forward(self, x):
    if self.stride > 1 and self.kernel > 1:
      top, bottom = _same_pad(x.shape[2], self.kernel, self.stride)
      left, right = _same_pad(x.shape[3], self.kernel, self.stride)
      x = F.pad(x, (left, right, top, bottom))
    return F.relu(self.bn(self.conv(x)))


class InceptionBlock(nn.Module):
  """convs[i] is Flax's ConvBN_i (the order Flax names them in)."""

  def __init__(self, cin: int, features: int):
    super().__init__()
    q = features // 4
    mid = 3 * q + cin
    self.convs = nn.ModuleList([
        ConvBN(cin, q, 1, 2), ConvBN(cin, q, 3, 2), ConvBN(cin, q, 5, 2),
        ConvBN(mid, q, 1), ConvBN(q, q, 3), ConvBN(mid, q, 1), ConvBN(q, q, 5), ConvBN(mid, q, 1),
        ConvBN(mid, features - 3 * q, 1)])

  def forward(self, x):
    c = self.convs
    x = torch.cat([c[0](x), c[1](x), c[2](x), F.max_pool2d(x, 3, 2, 1)], dim=1)
    return torch.cat([c[3](x), c[4](c[5](x)), c[6](c[7](x)), c[8](F.max_pool2d(x, 3, 1, 1))], dim=1)


class MusicEncoder(nn.Module):
  """int16 audio [N, L] -> embedding [N, D], with the log-mel front end inside."""

  def __init__(self, *, mel_filterbank: np.ndarray, n_fft: int, hop: int, num_tags: int, subspace_dims,
               stem_features: int, features: int, blocks: int, hidden: int, head: str = "relu"):
    super().__init__()
    self.n_fft, self.hop = n_fft, hop
    self.register_buffer("mel_fb", torch.tensor(mel_filterbank))
    self.register_buffer("window", torch.hann_window(n_fft, periodic=True))
    self.stem = ConvBN(1, stem_features, 5, 1)
    self.blocks = nn.ModuleList(
        [InceptionBlock(stem_features if i == 0 else features, features) for i in range(blocks)])
    dim = int(sum(subspace_dims))
    self.head = head  # "relu": ReLU(Dense) of the pooled features; "linear": ReLU(Dense(hidden)), then Dense
    if head == "linear":
      self.hidden = nn.Linear(2 * features, hidden)
    self.embedding = nn.Linear(hidden if head == "linear" else 2 * features, dim)
    self.tag_weights = nn.Parameter(torch.randn(dim, num_tags) / dim**0.5)
    self.tag_bias = nn.Parameter(torch.zeros(num_tags))

  @classmethod
  def from_config(cls, config, num_tags: int, mel_filterbank: np.ndarray) -> MusicEncoder:
    """The twin of the model a musicrep_jax config (ml_collections) describes."""
    a, m = config.audio, config.model
    return cls(mel_filterbank=mel_filterbank, n_fft=a.n_fft, hop=a.hop, num_tags=num_tags,
               subspace_dims=m.subspace_dims, stem_features=m.stem_features, features=m.features,
               blocks=m.blocks, hidden=m.hidden, head=m.head)

  def log_mel(self, audio):
    x = audio.float() / 32768.0
    spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant",
                      return_complex=True)
    mel = (spec.real**2 + spec.imag**2).transpose(1, 2) @ self.mel_fb  # [N, frames, mels]
    x = (torch.log10(1.0 + 10.0 * mel) - LOG_MEAN) / LOG_STD
    return x.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # [N, 1, T, F]

  def forward(self, audio):
    x = F.max_pool2d(self.stem(self.log_mel(audio)), 2, 2)
    for block in self.blocks:
      x = block(x)
    x = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
    if self.head == "linear":
      return self.embedding(F.relu(self.hidden(x)))
    return F.relu(self.embedding(x))


def proxy_loss(emb, weights, labels, tag_masks):
  """Masked proxy BCE (losses.proxy_bce_loss): mean over examples of sum over tags."""
  logits = (emb @ (weights * tag_masks.T)) * torch.rsqrt((emb**2) @ tag_masks.T + EPS)
  return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(-1).mean()


def _draw(allowed):  # uniform index among the True entries of each row (Gumbel max)
  g = -torch.log(-torch.log(torch.rand(allowed.shape, device=allowed.device).clamp_min(1e-20)))
  return torch.where(allowed, g, torch.full_like(g, -math.inf)).argmax(-1)


def _unit(x):
  return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + EPS)


def triplet_loss(emb, labels, tag_masks, margin: float = 0.1):
  """Label-conditioned in-batch triplets in each tag's subspace (losses.label_triplet_loss)."""
  labels = labels.bool()
  n = labels.shape[0]
  count = labels.sum(0)
  usable = labels & (count > 1)[None] & (count < n)[None]
  tag = _draw(usable)
  has = labels[:, tag].T
  pos = _draw(has & ~torch.eye(n, dtype=torch.bool, device=emb.device))
  neg = _draw(~has)
  m = tag_masks[tag]
  a, p, q = _unit(emb * m), _unit(emb[pos] * m), _unit(emb[neg] * m)
  per = F.relu((a * q).sum(-1) - (a * p).sum(-1) + margin)
  valid = usable.any(-1)
  return torch.where(valid, per, torch.zeros_like(per)).sum() / valid.sum().clamp_min(1)


def _group_pairs(emb, labels, tag_group, group_masks):
  """losses.group_pairs: per group s, cosines [S, N, N] in its subspace, positives (j != i
  shares a tag of s) and negatives (no shared tag of s, both have one)."""
  in_group = F.one_hot(tag_group.long(), group_masks.shape[0]).T.float()  # [S, T]
  z = _unit(emb[None] * group_masks[:, None])
  sim = z @ z.transpose(1, 2)
  ls = labels[None] * in_group[:, None]  # [S, N, T]
  share = (ls @ ls.transpose(1, 2)) > 0
  has = ls.sum(-1) > 0
  eye = torch.eye(emb.shape[0], dtype=torch.bool, device=emb.device)
  return sim, share & ~eye, ~share & has[:, None, :] & has[:, :, None]


def all_triplet_loss(emb, labels, tag_masks, margin: float = 0.1):
  """Every valid label-conditioned triplet (losses.all_triplet_loss), reduced as objective's
  triplet_all: the sum of the losses over the number of positive ones."""
  has = labels.bool().T  # [T, N]
  z = _unit(emb[None] * tag_masks[:, None])
  sim = z @ z.transpose(1, 2)  # [T, a, j]
  eye = torch.eye(emb.shape[0], dtype=torch.bool, device=emb.device)
  pos = has[:, :, None] & has[:, None, :] & ~eye
  neg = has[:, :, None] & ~has[:, None, :]
  valid = pos[..., None] & neg[:, :, None, :]
  loss = torch.where(valid, F.relu(sim[:, :, None, :] - sim[:, :, :, None] + margin), torch.zeros((), device=emb.device))
  return loss.sum() / (loss > 0).sum().clamp_min(1)


def _log1p_sum_exp(x, mask):
  x = torch.where(mask, x, torch.full_like(x, -math.inf))
  top = x.amax(-1, keepdim=True).clamp_min(0.0).detach()
  return (top + torch.log(torch.exp(-top) + torch.exp(x - top).sum(-1, keepdim=True)))[..., 0]


def multi_similarity_loss(emb, labels, tag_group, group_masks, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1):
  """losses.multi_similarity_loss (its pair miner too), the mean over valid anchors and groups."""
  sim, pos, neg = _group_pairs(emb, labels, tag_group, group_masks)
  min_pos = torch.where(pos, sim, torch.full_like(sim, math.inf)).amin(-1, keepdim=True)
  max_neg = torch.where(neg, sim, torch.full_like(sim, -math.inf)).amax(-1, keepdim=True)
  loss = (_log1p_sum_exp(-alpha * (sim - base), pos & (sim - epsilon < max_neg)) / alpha
          + _log1p_sum_exp(beta * (sim - base), neg & (sim + epsilon > min_pos)) / beta)
  valid = pos.any(-1) & neg.any(-1)
  return torch.where(valid, loss, torch.zeros_like(loss)).sum() / valid.sum().clamp_min(1)


def supcon_loss(emb, labels, tag_group, group_masks, temperature=0.1):
  """losses.supervised_contrastive_loss, the mean over anchors with a positive, and groups."""
  sim, pos, _ = _group_pairs(emb, labels, tag_group, group_masks)
  logits = sim / temperature
  eye = torch.eye(emb.shape[0], dtype=torch.bool, device=emb.device)
  log_prob = logits - torch.logsumexp(logits.masked_fill(eye, -math.inf), -1, keepdim=True)
  count = pos.sum(-1)
  loss = -torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(-1) / count.clamp_min(1)
  return torch.where(count > 0, loss, torch.zeros_like(loss)).sum() / (count > 0).sum().clamp_min(1)


def batch_loss(loss_config, objective, emb, tag_weights, labels):
  """The mean loss of a batch, as objective.Objective computes it for `loss_config.name`
  (without track regularisation); `objective` holds its masks as tensors."""
  c, o = loss_config, objective
  if c.name == "proxy":
    return proxy_loss(emb, tag_weights, labels, o["tag_masks"])
  if c.name == "triplet":
    return triplet_loss(emb, labels, o["tag_masks"], c.margin)
  if c.name == "triplet_all":
    return all_triplet_loss(emb, labels, o["tag_masks"], c.margin)
  if c.name == "multi_similarity":
    return multi_similarity_loss(emb, labels, o["tag_group"], o["group_masks"], c.ms_alpha, c.ms_beta, c.ms_base,
                                 c.ms_epsilon)
  return supcon_loss(emb, labels, o["tag_group"], o["group_masks"], c.temperature)


def load_flax(model: MusicEncoder, variables: dict) -> None:
  """Copies Flax variables {"params": ..., "batch_stats": ...} (numpy) into the twin."""
  params, stats = variables["params"], variables["batch_stats"]
  bb, bbs = params["backbone"], stats["backbone"]

  def conv_bn(module: ConvBN, p, s):
    kernel = p["Conv_0"]["kernel"] if "Conv_0" in p else p["Dense_0"]["kernel"][None, None]
    module.conv.weight.copy_(torch.tensor(np.transpose(kernel, (3, 2, 0, 1))))
    module.bn.weight.copy_(torch.tensor(p["BatchNorm_0"]["scale"]))
    module.bn.bias.copy_(torch.tensor(p["BatchNorm_0"]["bias"]))
    module.bn.running_mean.copy_(torch.tensor(s["BatchNorm_0"]["mean"]))
    module.bn.running_var.copy_(torch.tensor(s["BatchNorm_0"]["var"]))

  def dense(module: nn.Linear, p):
    module.weight.copy_(torch.tensor(np.asarray(p["kernel"]).T))
    module.bias.copy_(torch.tensor(p["bias"]))

  with torch.no_grad():
    conv_bn(model.stem, bb["ConvBN_0"], bbs["ConvBN_0"])
    for i, block in enumerate(model.blocks):
      for j, conv in enumerate(block.convs):
        conv_bn(conv, bb[f"InceptionBlock_{i}"][f"ConvBN_{j}"], bbs[f"InceptionBlock_{i}"][f"ConvBN_{j}"])
    if model.head == "linear":
      dense(model.hidden, bb["Dense_0"])
    dense(model.embedding, params["embedding"])
    model.tag_weights.copy_(torch.tensor(params["tag_weights"]))
    model.tag_bias.copy_(torch.tensor(params["tag_bias"]))


LOSSES = ("proxy", "triplet", "triplet_all", "multi_similarity", "supcon")  # those of objective.LOSSES it has


class Trainer:
  """Adam (eps 1e-8, like optax.scale_by_adam) on one loss (`batch_loss`); `step` runs one
  update. `objective`: the run's objective.Objective (its loss config and masks).
  bfloat16: the backbone under autocast (the JAX side's model.dtype=bfloat16)."""

  def __init__(self, model: MusicEncoder, objective, lr: float, compile: bool = False,  # pylint: disable=redefined-builtin
               device: str = "cpu", bfloat16: bool = False):
    loss_config = objective.cfg
    if loss_config.name not in LOSSES:
      raise ValueError(f"the PyTorch twin has the losses {', '.join(LOSSES)}, not {loss_config.name!r}")
    self.model = model.to(device).to(memory_format=torch.channels_last).train()
    self.device = device
    masks = {k: torch.as_tensor(np.asarray(getattr(objective, k)), device=device)
             for k in ("tag_masks", "tag_group", "group_masks")}
    self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, eps=1e-8)

    def objective_fn(audio, labels):
      with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bfloat16):
        emb = self.model(audio).float()
      return batch_loss(loss_config, masks, emb, self.model.tag_weights, labels)

    self.objective = torch.compile(objective_fn) if compile else objective_fn

  def step(self, audio: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    self.opt.zero_grad(set_to_none=True)
    loss = self.objective(audio, labels)
    loss.backward()
    self.opt.step()
    return loss.detach()

  def sync(self) -> None:
    if self.device.startswith("cuda"):
      torch.cuda.synchronize()
