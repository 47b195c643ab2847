"""What the RMM advertises in RmiFeatureRegister0 (rmm-abi §6 RMI_FEATURES), derived from
the PE's ID registers (modelled by the platform configuration)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_RECS_ORDER = 10


@dataclass(frozen=True)
class RmmFeatures:
    pa_bits: int = 48
    num_bps: int = 2  # breakpoints implemented (BRPs + 1)
    num_wps: int = 2
    pmu_counters: int = 0
    sve_vl: int = 0  # SVE vector length in bits; 0 = no SVE
    hash_sha256: bool = True
    hash_sha512: bool = True
    gic_num_lrs: int = 4
    vmid_bits: int = 16

    @property
    def s2sz(self) -> int:
        return min(self.pa_bits, 48)

    @property
    def sve_vl_field(self) -> int:
        return self.sve_vl // 128 - 1 if self.sve_vl else 0

    def register0(self) -> int:
        return (
            (self.s2sz & 0xFF)
            | (0 << 8)  # LPA2 not modelled
            | (int(bool(self.sve_vl)) << 9)
            | (self.sve_vl_field & 0xF) << 10
            | ((self.num_bps - 1) & 0x3F) << 14
            | ((self.num_wps - 1) & 0x3F) << 20
            | 1 << 26  # PMU_EN
            | (self.pmu_counters & 0x1F) << 27
            | int(self.hash_sha256) << 32
            | int(self.hash_sha512) << 33
            | ((self.gic_num_lrs - 1) & 0xF) << 34
            | MAX_RECS_ORDER << 38
        )
