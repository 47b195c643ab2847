"""The Realm Management Monitor (R-EL2): boot, RMI, RSI, granule and realm state."""

from .rmm import Rmm

__all__ = ["Rmm"]
