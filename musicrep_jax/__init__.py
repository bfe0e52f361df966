"""musicrep_jax: disentangled music representations in JAX/Flax.

Importing the package (before JAX starts its backend) turns off XLA's one-convolution
YNNPACK fusions on jaxlib 0.10 CPUs: this model's train step runs about 1.3x faster
without them (docs/PERFORMANCE.md). The flag is only added where its name is known
(jaxlib 0.10.x); MUSICREP_JAX_XLA_TUNING=0, or any ynn flag already in XLA_FLAGS,
leaves XLA_FLAGS as it is.
"""

import os as _os


def _tune_xla_cpu() -> None:
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  if _os.environ.get("MUSICREP_JAX_XLA_TUNING", "1") == "0":
    return
  try:
    if not metadata.version("jaxlib").startswith("0.10."):
      return
  except metadata.PackageNotFoundError:
    return
  flags = _os.environ.get("XLA_FLAGS", "")
  if "ynn_fusion_type" not in flags:
    _os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_experimental_ynn_fusion_type=-individual_convolution").strip()


_tune_xla_cpu()
