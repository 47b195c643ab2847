"""Fuzzing the model: a hostile host (:mod:`.host`), a hostile guest (:mod:`.guest`) and
campaigns over local processes or a Ray cluster (:mod:`.campaign`).

``ccasim fuzz --host`` / ``--guest`` drive them from the command line. A failure (an
exception escaping an SMC, an invariant violation, an isolation breach, memory outside a
realm changing while it runs...) is shrunk to a minimal sequence and printed as a runnable
Python reproducer.
"""

from .common import Failure, derive_seed, shrink

__all__ = ["Failure", "derive_seed", "shrink"]
