"""ccasim: an executable model of the Arm Confidential Compute Architecture."""

__version__ = "0.1.0"

from .arch import (
    ExternalAbort,
    GptAddressSizeFault,
    GptWalkFault,
    GranuleProtectionCheckException,
    GranuleProtectionFault,
    PhysicalAddressSpace,
    SecurityState,
)
from .config import ConfigError, PlatformConfig
from .platform import Platform

__all__ = [
    "ConfigError",
    "ExternalAbort",
    "GptAddressSizeFault",
    "GptWalkFault",
    "GranuleProtectionCheckException",
    "GranuleProtectionFault",
    "PhysicalAddressSpace",
    "Platform",
    "PlatformConfig",
    "SecurityState",
]
