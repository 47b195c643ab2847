"""Traces in the Chrome trace-event JSON format (open them in Perfetto UI or
chrome://tracing).

A :class:`Tracer` attached to a platform (``Platform.tracer``) records, per PE (one track
each): SMCs as spans in the world that issued them, world switches, RMI / RSI / PSCI calls
with arguments and results, REC entries and exits with the exit reason, GPT transitions and
faults. With no tracer attached the hooks cost one attribute test.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RMI_NAMES = {
    0xC4000150: "RMI_VERSION", 0xC4000151: "RMI_GRANULE_DELEGATE",
    0xC4000152: "RMI_GRANULE_UNDELEGATE", 0xC4000153: "RMI_DATA_CREATE",
    0xC4000154: "RMI_DATA_CREATE_UNKNOWN", 0xC4000155: "RMI_DATA_DESTROY",
    0xC4000157: "RMI_REALM_ACTIVATE", 0xC4000158: "RMI_REALM_CREATE",
    0xC4000159: "RMI_REALM_DESTROY", 0xC400015A: "RMI_REC_CREATE",
    0xC400015B: "RMI_REC_DESTROY", 0xC400015C: "RMI_REC_ENTER", 0xC400015D: "RMI_RTT_CREATE",
    0xC400015E: "RMI_RTT_DESTROY", 0xC400015F: "RMI_RTT_MAP_UNPROTECTED",
    0xC4000161: "RMI_RTT_READ_ENTRY", 0xC4000162: "RMI_RTT_UNMAP_UNPROTECTED",
    0xC4000164: "RMI_PSCI_COMPLETE", 0xC4000165: "RMI_FEATURES", 0xC4000166: "RMI_RTT_FOLD",
    0xC4000167: "RMI_REC_AUX_COUNT", 0xC4000168: "RMI_RTT_INIT_RIPAS",
    0xC4000169: "RMI_RTT_SET_RIPAS",
    0xC400018F: "RMM_RMI_REQ_COMPLETE", 0xC40001B0: "RMM_GTSI_DELEGATE",
    0xC40001B1: "RMM_GTSI_UNDELEGATE", 0xC40001B2: "RMM_ATTEST_GET_REALM_KEY",
    0xC40001B3: "RMM_ATTEST_GET_PLAT_TOKEN", 0xC40001CF: "RMM_BOOT_COMPLETE",
    0x84000000: "PSCI_VERSION", 0x8400000A: "PSCI_FEATURES", 0x80000000: "SMCCC_VERSION",
    0xC4000402: "FIRME_GM_GPI_SET",
    0xC4000190: "RSI_VERSION", 0xC4000191: "RSI_FEATURES", 0xC4000192: "RSI_MEASUREMENT_READ",
    0xC4000193: "RSI_MEASUREMENT_EXTEND", 0xC4000194: "RSI_ATTESTATION_TOKEN_INIT",
    0xC4000195: "RSI_ATTESTATION_TOKEN_CONTINUE", 0xC4000196: "RSI_REALM_CONFIG",
    0xC4000197: "RSI_IPA_STATE_SET", 0xC4000198: "RSI_IPA_STATE_GET",
    0xC4000199: "RSI_HOST_CALL",
    0x84000001: "PSCI_CPU_SUSPEND", 0x84000002: "PSCI_CPU_OFF", 0x84000003: "PSCI_CPU_ON",
    0xC4000003: "PSCI_CPU_ON", 0x84000004: "PSCI_AFFINITY_INFO",
    0xC4000004: "PSCI_AFFINITY_INFO", 0x84000008: "PSCI_SYSTEM_OFF",
    0x84000009: "PSCI_SYSTEM_RESET",
}


def fid_name(fid: int) -> str:
    return RMI_NAMES.get(fid & 0xFFFE_FFFF, f"SMC {fid:#x}")


@dataclass
class Tracer:
    """Collects trace events; :meth:`save` writes the JSON file."""

    events: list[dict[str, Any]] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)
    limit: int = 1_000_000

    def now(self) -> float:
        """Microseconds since the tracer started."""
        return (time.perf_counter() - self.start) * 1e6

    def _add(self, event: dict[str, Any]) -> None:
        if len(self.events) < self.limit:
            self.events.append(event)

    def span(self, name: str, cat: str, pe: int, begin: float, args: dict[str, Any]) -> None:
        """A complete event from ``begin`` (µs) to now."""
        self._add({"name": name, "cat": cat, "ph": "X", "ts": begin, "dur": self.now() - begin,
                   "pid": 1, "tid": pe, "args": args})

    def instant(self, name: str, cat: str, pe: int, args: dict[str, Any]) -> None:
        self._add({"name": name, "cat": cat, "ph": "i", "s": "t", "ts": self.now(), "pid": 1,
                   "tid": pe, "args": args})

    def to_json(self) -> dict[str, Any]:
        threads = sorted({e["tid"] for e in self.events})
        meta = [{"name": "thread_name", "ph": "M", "pid": 1, "tid": t,
                 "args": {"name": f"PE {t}"}} for t in threads]
        meta.append({"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
                     "args": {"name": "ccasim platform"}})
        return {"traceEvents": meta + self.events, "displayTimeUnit": "ns"}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))
