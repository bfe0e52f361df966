"""Two JAX processes (jax.distributed, local coordinator, CPU) train like one process
fed the same global batch (the full `main` as two processes: test_pods.py)."""

import json
import os
import socket

import numpy as np
import pytest

from conftest import REPO, start, xla_flags

pytestmark = pytest.mark.slow  # end-to-end runs of the real commands


def _port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _launch(argv_of, n):
  procs = [start(*argv_of(i), env={"XLA_FLAGS": xla_flags(), "PYTHONPATH": REPO}) for i in range(n)]
  outs = [p.communicate(timeout=900) for p in procs]
  assert [p.returncode for p in procs] == [0] * n, "\n".join(f"process {i} ({p.returncode}):\n{err[-3000:]}"
                                                        for i, (p, (_, err)) in enumerate(zip(procs, outs)))
  return [o for o, _ in outs]


def test_two_processes_match_one_process_on_the_same_global_batch(data_dir):
  port = _port()
  worker = os.path.join("tests", "multiprocess_worker.py")
  two = [json.loads(o.strip().splitlines()[-1]) for o in
         _launch(lambda i: [worker, str(i), "2", str(port), data_dir], 2)]
  one = json.loads(_launch(lambda i: [worker, "0", "1", "0", data_dir], 1)[0].strip().splitlines()[-1])
  assert [r["processes"] for r in two] == [2, 2] and two[0]["devices"] == 2
  assert two[0]["digest"] == two[1]["digest"]  # the replicated state is the same on both
  # Only the order of the cross-process sums differs from one process.
  np.testing.assert_allclose(two[0]["losses"], one["losses"], rtol=1e-4)
  np.testing.assert_allclose(two[0]["digest"], one["digest"], rtol=1e-4)
