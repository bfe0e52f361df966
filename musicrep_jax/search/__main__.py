"""`python -m musicrep_jax.search`: the environment first (before JAX loads), then the command line."""

import musicrep_jax

musicrep_jax.cli_environment()

from musicrep_jax.search import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

cli.run()
