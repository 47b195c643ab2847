"""The silicon: security states and PAS, sparse physical memory, the GPT format and the
granule protection check, processing elements and devices."""

from .faults import (
    AccessKind,
    ArchFault,
    ExternalAbort,
    GptAddressSizeFault,
    GptExternalAbort,
    GptWalkFault,
    GranuleProtectionCheckException,
    GranuleProtectionFault,
    UndefinedInstruction,
)
from .security import PhysicalAddressSpace, SecurityState

__all__ = [
    "AccessKind",
    "ArchFault",
    "ExternalAbort",
    "GptAddressSizeFault",
    "GptExternalAbort",
    "GptWalkFault",
    "GranuleProtectionCheckException",
    "GranuleProtectionFault",
    "PhysicalAddressSpace",
    "SecurityState",
    "UndefinedInstruction",
]
