"""Benchmark tools, outside the library proper (nothing in musicrep_jax imports them):

  python -m musicrep_jax.tools.bench   train several configs, print the paper's comparison tables
  python -m musicrep_jax.tools.perf    train-step and input-pipeline speed; --vs-torch against the twin
  report.py                            tables and plots from eval.json files (used by bench)
  torch_twin.py                        a PyTorch twin of the model, for `perf --vs-torch` (needs .[torch])
"""
