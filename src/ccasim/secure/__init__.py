"""The Secure world: an SPMC at S-EL2 and its partitions at S-EL1, reached with FF-A.

* :mod:`.ffa` — the FF-A v1.1 ABI subset: function IDs, error codes, descriptors;
* :mod:`.spmc` — the Secure Partition Manager Core (entered from EL3 by
  :mod:`ccasim.firmware.spmd`): partitions, RX/TX buffers, direct messages, memory sharing
  (granules lent or donated move to the Secure PAS through the monitor);
* :mod:`.mmu` — the partitions' stage-2 tables;
* :mod:`.partitions` — the partition images (a key store and an echo/counter partition);
* :mod:`.client` — a Normal-world FF-A driver (what an OS or hypervisor would use).
"""

from .spmc import Spmc

__all__ = ["Spmc"]
