"""Realm guest images: a small AArch64 runtime and demo programs.

* :mod:`.asm` — :func:`assemble` (keystone-engine) into an :class:`Image` with symbols;
* :mod:`.runtime` — assembly building blocks: entry, exception vectors, UART, RSI and
  PSCI calls, attestation-token fetch, :func:`compose` for a whole image;
* :mod:`.programs` — ready guests for a :class:`GuestLayout` (hello, measurement extend,
  attestation, two vCPUs, benchmark loops);
* :mod:`.abi` — RSI/PSCI function IDs, status codes and shared structures;
* :mod:`.bare` — run images on bare Unicorn with a Python stand-in for the RMM (tests,
  debugging, benchmark baseline).
"""

from ccasim.guest.asm import GuestAssemblyError, Image, assemble
from ccasim.guest.programs import GuestLayout

__all__ = ["GuestAssemblyError", "GuestLayout", "Image", "assemble"]
