"""Offline RIM prediction (rmm-abi §10, attestation.md §5).

Given a :class:`~ccasim.host.vmm.RealmSpec`, compute the Realm Initial Measurement the RMM
will report once :class:`~ccasim.host.vmm.Vmm` has built that realm — without running
anything. The prediction replays the VMM's fixed build order (REALM_CREATE, INIT_RIPAS
over each RAM range in ascending order, DATA_CREATE per granule in ascending IPA order,
REC_CREATE with only the boot vCPU runnable) and the host's RTT policy, because the RIPAS
descriptors depend on the RTT layout at the time of INIT_RIPAS: the host starts from the
starting-level tables and adds a level only where RTT_INIT_RIPAS reports that the walk
stopped at an entry too large for the range (the largest aligned blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..host.rmi import default_start_level
from ..host.vmm import RealmSpec
from ..rmm import measurement as m
from ..rmm.s2tt import ENTRIES, level_size


@dataclass
class RimTrace:
    """The RIM after each measured step (for explanations and debugging)."""

    steps: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def rim(self) -> bytes:
        return self.steps[-1][1]


def predict_rim(spec: RealmSpec) -> RimTrace:
    algo = m.HashAlgorithm(spec.algorithm)
    trace = RimTrace()
    rim = m.rim_init(algo, {
        "flags": 0, "s2sz": spec.s2sz, "sve_vl": 0, "num_bps": spec.num_bps,
        "num_wps": spec.num_wps, "pmu_num_ctrs": 0, "hash_algo": spec.algorithm,
    })
    trace.steps.append(("REALM_CREATE", rim))
    start = default_start_level(spec.s2sz)
    tables: set[tuple[int, int]] = set()  # (level, IPA of the region the table covers)

    def deepest(addr: int) -> int:
        level = start
        while level < 3 and (level + 1, addr & ~(level_size(level) - 1)) in tables:
            level += 1
        return level

    for base, size in sorted(spec.ram):
        addr, top = base, base + size
        while addr < top:
            level = deepest(addr)
            entry = level_size(level)
            if addr % entry or addr + entry > top:
                # RTT_INIT_RIPAS fails with RTT(level): the host adds the next level.
                tables.add((level + 1, addr & ~(entry - 1)))
                continue
            table_end = (addr & ~(entry * ENTRIES - 1)) + entry * ENTRIES
            while addr + entry <= top and addr < table_end:
                rim = m.extend_ripas(algo, rim, addr, addr + entry)
                trace.steps.append((f"RTT_INIT_RIPAS [{addr:#x}, {addr + entry:#x})", rim))
                addr += entry
    for ipa, content, measured in spec.data_pages():
        rim = m.extend_data(algo, rim, ipa, int(measured), content)
        trace.steps.append((f"DATA_CREATE {ipa:#x}{'' if measured else ' (unmeasured)'}", rim))
    if spec.vcpus:
        gprs = list(spec.boot_args) + [0] * (8 - len(spec.boot_args))
        rim = m.extend_rec(algo, rim, 1, spec.entry, gprs)
        trace.steps.append(("REC_CREATE vCPU 0 (runnable)", rim))
    return trace
