"""The hostile guest: random instruction streams and random RSI / PSCI calls inside a realm.

A program is a list of :class:`Item` s — random 32-bit words, well-formed loads and stores
(single registers, bytes, halfwords, pairs, post-indexed, exclusive, DC ZVA / CIVAC) to
random IPAs, SMCs with random RSI / PSCI / SMCCC function IDs and random x1..x10, HVC, SVC,
BRK, HLT, WFI, WFE, ERET, UDF, MRS / MSR of interesting and random system registers. The
items are placed as DATA in a realm behind a fixed frame (exception vectors that skip the
faulting instruction, or give up at an instruction abort; a prologue; an epilogue that
powers the realm off) and run with RMI_REC_ENTER under a VMM-like loop with bounded exits
and time: emulated MMIO (reads return random values), faulting RAM in with
DATA_CREATE_UNKNOWN, PSCI completion, RIPAS changes accepted or rejected at random, host
calls answered with random registers.

Checked on every REC entry:

* RMI_REC_ENTER returns (the host always gets control back), within ``HANG_S``, with a
  defined RMI status; no Python exception escapes; the invariant checker stays clean;
* the exit is one the spec defines (rmm-abi §7.2): a known exit reason, a synchronous exit
  with an exception class the RMM reports (WFx, trapped GIC system register, instruction
  or data abort), a PSCI exit with a PSCI function that exits, a RIPAS change with a sane
  range and value;
* nothing outside the realm changed while it ran, except the RecRun exit area and the
  Non-secure pages it maps (shared windows): the GPT bytes in Root memory, every granule the
  host allocated (parameter and source pages, the other RecRun page, the realm's RTTs), a
  sample of other Non-secure granules, another realm's granules (read with a Realm-state
  probe). Secure DRAM is compared at the start and end of the program (the host makes no
  Secure-world calls in between).

After the run the realm is torn down through the RMI (a failed teardown is a failure) and
the checker makes a full pass.

A failing program shrinks by delta debugging over its items (the same failure signature on
a fresh platform) and prints as a standalone script, :func:`reproducer`. Runs are
deterministic for a given seed except where the physical timer (a 50 ms slice) interrupts a
looping guest.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from ..arch.memory import GRANULE_SIZE
from ..arch.security import PhysicalAddressSpace as Pas
from ..arch.security import SecurityState
from ..config import PlatformConfig
from ..guest import abi
from ..guest.asm import assemble
from ..guest.runtime import default_uart_ipa
from ..host.rmi import RealmBuilder, RmiClient
from ..host.vmm import RealmSpec, RealmVm, Segment, Vmm
from ..platform import Platform
from ..rmm.recrun import REC_ENTER, REC_EXIT, REC_EXIT_OFFSET, RecExitReason, pack_words, words
from .common import (
    GUEST_MAX_EXITS,
    GUEST_TIME_LIMIT_S,
    Failure,
    ShrinkStats,
    dispose,
    exception_failure,
    reproducer_header,
    shrink,
)
from .host import config_python, fid_label

MASK64 = (1 << 64) - 1
G = GRANULE_SIZE

#: The platform every guest program runs on (a small Secure DRAM: it is compared whole).
GUEST_CONFIG = PlatformConfig(cpus=2, dram_size=64 << 20, secure_dram_size=2 << 20)

S2SZ = 40
CODE = 0x8000_0000  # the frame and the stream, then RIPAS RAM up to CODE + RAM_SIZE
RAM_SIZE = 0x20_0000
DATA_IPA = CODE + 0x10_0000  # one DATA granule of random bytes
FREE_RAM = CODE + 0x18_0000  # RIPAS RAM, unassigned: the VMM faults it in on access
EMPTY_IPA = 0x4000_0000  # protected, RIPAS EMPTY
UNPROTECTED = 1 << (S2SZ - 1)
SHARED_IPA = UNPROTECTED + 0x10_0000  # one Non-secure page mapped into the realm
MMIO_IPA = UNPROTECTED + 0x200_0000  # unprotected and unmapped: emulated MMIO
UART_IPA = default_uart_ipa(S2SZ)
STREAM = CODE + 0x840  # the first stream word
EPILOGUE = CODE + 0x810

HANG_S = 10.0  # a REC entry that takes longer than this is reported
MAX_FAULT_INS = 8
REC_ENTER_FID = 0xC400_015C
PSCI_COMPLETE_FID = 0xC400_0164
RTT_SET_RIPAS_FID = 0xC400_0169
DATA_CREATE_UNKNOWN_FID = 0xC400_0154

ENTER_EMUL_MMIO = 1 << 0
ENTER_INJECT_SEA = 1 << 1
ENTER_RIPAS_REJECT = 1 << 4

# The exception classes a synchronous exit may report (rmm-abi §7.2): WFx, a trapped GIC
# system register, instruction and data aborts (and 0 for other instruction aborts).
SYNC_ECS = frozenset({0x00, 0x01, 0x18, 0x20, 0x24})
PSCI_EXITS = frozenset({abi.PSCI_CPU_SUSPEND, 0x8400_0001, abi.PSCI_CPU_OFF,
                        abi.PSCI_CPU_ON, 0x8400_0003, abi.PSCI_AFFINITY_INFO, 0x8400_0004,
                        abi.PSCI_SYSTEM_OFF, abi.PSCI_SYSTEM_RESET})


# ============================================================================ encoding
def movz(rd: int, imm16: int, hw: int = 0) -> int:
    return 0xD280_0000 | hw << 21 | (imm16 & 0xFFFF) << 5 | rd


def movk(rd: int, imm16: int, hw: int) -> int:
    return 0xF280_0000 | hw << 21 | (imm16 & 0xFFFF) << 5 | rd


def mov_imm(rd: int, value: int) -> list[int]:
    """MOVZ/MOVK words that put the 64-bit ``value`` into ``xrd``."""
    value &= MASK64
    chunks = [(hw, (value >> (16 * hw)) & 0xFFFF) for hw in range(4)]
    nonzero = [(hw, c) for hw, c in chunks if c] or [(0, 0)]
    (hw0, c0), rest = nonzero[0], nonzero[1:]
    return [movz(rd, c0, hw0)] + [movk(rd, c, hw) for hw, c in rest]


def branch(source: int, target: int) -> int:
    return 0x1400_0000 | (((target - source) >> 2) & 0x3FF_FFFF)


def sysreg_op(read: bool, rt: int, op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    return ((0xD530_0000 if read else 0xD510_0000) | (op0 & 1) << 19 | op1 << 16 | crn << 12
            | crm << 8 | op2 << 5 | rt)


SMC0 = 0xD400_0003
WFI = 0xD503_207F
WFE = 0xD503_205F
NOP = 0xD503_201F
ERET = 0xD69F_03E0
ISB = 0xD503_3FDF

#: (name, base encoding, uses Rt2) of the load/store forms: base | Rn << 5 | Rt (for DC:
#: base | Xt).
MEMORY_OPS: tuple[tuple[str, int, bool], ...] = (
    ("ldr x", 0xF940_0000, False), ("str x", 0xF900_0000, False),
    ("ldr w", 0xB940_0000, False), ("str w", 0xB900_0000, False),
    ("ldrb", 0x3940_0000, False), ("strb", 0x3900_0000, False),
    ("ldrh", 0x7940_0000, False), ("strh", 0x7900_0000, False),
    ("ldp", 0xA940_0000, True), ("stp", 0xA900_0000, True),
    ("ldr post", 0xF840_8400, False), ("ldxr", 0xC85F_7C00, False),
    ("dc zva", 0xD50B_7420, False), ("dc civac", 0xD50B_7E20, False),
)
SYSREGS: tuple[tuple[str, tuple[int, int, int, int, int]], ...] = (
    ("SCTLR_EL1", (3, 0, 1, 0, 0)), ("VBAR_EL1", (3, 0, 12, 0, 0)),
    ("TTBR0_EL1", (3, 0, 2, 0, 0)), ("TCR_EL1", (3, 0, 2, 0, 2)),
    ("MAIR_EL1", (3, 0, 10, 2, 0)), ("ELR_EL1", (3, 0, 4, 0, 1)),
    ("SPSR_EL1", (3, 0, 4, 0, 0)), ("ESR_EL1", (3, 0, 5, 2, 0)), ("FAR_EL1", (3, 0, 6, 0, 0)),
    ("MPIDR_EL1", (3, 0, 0, 0, 5)), ("MIDR_EL1", (3, 0, 0, 0, 0)),
    ("ID_AA64PFR0_EL1", (3, 0, 0, 4, 0)), ("ID_AA64DFR0_EL1", (3, 0, 0, 5, 0)),
    ("CNTV_CTL_EL0", (3, 3, 14, 3, 1)), ("CNTV_CVAL_EL0", (3, 3, 14, 3, 2)),
    ("CNTP_CTL_EL0", (3, 3, 14, 2, 1)), ("CNTVCT_EL0", (3, 3, 14, 0, 2)),
    ("ICC_SGI1R_EL1", (3, 0, 12, 11, 5)), ("ICC_DIR_EL1", (3, 0, 12, 11, 1)),
    ("ICC_SGI0R_EL1", (3, 0, 12, 11, 7)), ("ICC_PMR_EL1", (3, 0, 4, 6, 0)),
    ("ICC_IAR1_EL1", (3, 0, 12, 12, 0)), ("ICC_EOIR1_EL1", (3, 0, 12, 12, 1)),
    ("HCR_EL2", (3, 4, 1, 1, 0)), ("VTTBR_EL2", (3, 4, 2, 1, 0)), ("SCR_EL3", (3, 6, 1, 1, 0)),
    ("PMCR_EL0", (3, 3, 9, 12, 0)), ("MDSCR_EL1", (2, 0, 0, 2, 2)),
    ("DBGBVR0_EL1", (2, 0, 0, 0, 4)), ("DBGBCR0_EL1", (2, 0, 0, 0, 5)),
    ("SP_EL0", (3, 0, 4, 1, 0)), ("DAIF", (3, 3, 4, 2, 1)), ("NZCV", (3, 3, 4, 2, 0)),
    ("TPIDR_EL1", (3, 0, 13, 0, 4)), ("CONTEXTIDR_EL1", (3, 0, 13, 0, 1)),
    ("CPACR_EL1", (3, 0, 1, 0, 2)), ("ZCR_EL1", (3, 0, 1, 2, 0)),
)
RSI_FIDS = tuple(range(abi.RSI_VERSION, abi.RSI_HOST_CALL + 1))
PSCI_FIDS = (abi.PSCI_VERSION, abi.PSCI_CPU_SUSPEND, 0x8400_0001, abi.PSCI_CPU_ON, 0x8400_0003,
             abi.PSCI_AFFINITY_INFO, 0x8400_0004, abi.PSCI_FEATURES, 0x8400_0005, 0x8400_000C,
             0xC400_0012)
RARE_FIDS = (abi.PSCI_SYSTEM_OFF, abi.PSCI_SYSTEM_RESET, abi.PSCI_CPU_OFF)  # end the run
OTHER_FIDS = (abi.SMCCC_VERSION, 0x8000_0001, 0xC400_0150, 0xC400_0151, 0xC400_015C,
              0xC400_01B0, 0xC400_01B2, 0x8400_0063, 0xC400_0402, 0xC400_01AF, 0xC401_0190,
              0xC401_0192)


@dataclass(frozen=True)
class Item:
    """A few instruction words and what they mean (for the reproducer)."""

    words: tuple[int, ...]
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"words": list(self.words), "text": self.text}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Item:
        return cls(tuple(int(w) for w in d["words"]), str(d["text"]))


@dataclass(frozen=True)
class GuestProgram:
    """A stream of items and the seed of everything else (data, the VMM's choices)."""

    items: tuple[Item, ...]
    seed: int

    def words(self) -> list[int]:
        return [w for item in self.items for w in item.words]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "items": [i.to_dict() for i in self.items]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GuestProgram:
        return cls(tuple(Item.from_dict(i) for i in d["items"]), int(d["seed"]))


# ============================================================================ generation
class StreamGenerator:
    """Random items (see the module docstring) from one ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def ipa(self) -> int:
        rng = self.rng
        base = rng.choice((CODE, CODE + 0x1000, DATA_IPA, FREE_RAM, FREE_RAM + 0x3000,
                           EMPTY_IPA, SHARED_IPA, UART_IPA, MMIO_IPA, 1 << S2SZ, 1 << 44,
                           UNPROTECTED - G, 0, CODE + RAM_SIZE, rng.getrandbits(48)))
        if rng.random() < 0.5:
            return base
        return base + rng.choice((8, 0x18, 0x800, 0xFF8, 1, 3, rng.randrange(0, G, 8)))

    def value(self) -> int:
        rng = self.rng
        k = rng.randrange(8)
        if k < 3:
            return self.ipa() & ~(0xFF if rng.random() < 0.5 else 0)
        if k < 5:
            return rng.randrange(8)
        if k == 5:
            return rng.choice((0x1_0000, 1, 0x100, STREAM, MASK64, 1 << 63))
        return rng.getrandbits(64)

    def item(self) -> Item:
        rng = self.rng
        k = rng.choices(("word", "memory", "smc", "trap", "sysreg"),
                        weights=(25, 27, 22, 12, 14))[0]
        return getattr(self, f"_{k}")()  # type: ignore[no-any-return]

    def _word(self) -> Item:
        w = self.rng.getrandbits(32)
        return Item((w,), f".word {w:#010x}")

    def _memory(self) -> Item:
        rng = self.rng
        name, base, pair = MEMORY_OPS[rng.randrange(len(MEMORY_OPS))]
        rn = rng.randrange(2, 16)
        rt = rng.randrange(31)
        ipa = self.ipa()
        words = mov_imm(rn, ipa)
        # DC <op>, Xt takes the address in the Rt field
        op = base | rn if name.startswith("dc") else base | rn << 5 | rt
        if pair:
            op |= rng.randrange(31) << 10
        words.append(op)
        return Item(tuple(words), f"{name} via x{rn} = {ipa:#x}")

    def _smc(self) -> Item:
        rng = self.rng
        k = rng.random()
        if k < 0.6:
            fid = rng.choice(RSI_FIDS)
        elif k < 0.85:
            fid = rng.choice(PSCI_FIDS)
        elif k < 0.865:
            fid = rng.choice(RARE_FIDS)
        elif k < 0.97:
            fid = rng.choice(OTHER_FIDS)
        else:
            fid = rng.getrandbits(32)
        words = mov_imm(0, fid)
        nargs = rng.randrange(11)
        args = [self.value() for _ in range(nargs)]
        for i, v in enumerate(args, start=1):
            words += mov_imm(i, v)
        words.append(SMC0)
        shown = ", ".join(f"{a:#x}" for a in args[:4]) + (", ..." if nargs > 4 else "")
        return Item(tuple(words), f"smc {fid_label(fid)}({shown})")

    def _trap(self) -> Item:
        rng = self.rng
        imm = rng.getrandbits(16)
        # ERET returns to ELR_EL1, which after a skipped exception is the ERET itself: a
        # guest that loops until the physical timer fires. Rare, so that runs stay short.
        name, word = rng.choices((
            ("hvc", 0xD400_0002 | imm << 5), ("svc", 0xD400_0001 | imm << 5),
            ("brk", 0xD420_0000 | imm << 5), ("hlt", 0xD440_0000 | imm << 5),
            ("wfi", WFI), ("wfe", WFE), ("eret", ERET), ("udf", imm), ("isb", ISB),
            ("nop", NOP), ("msr daifclr", 0xD503_4FFF), ("msr spsel", 0xD500_40BF),
        ), weights=(4, 4, 4, 3, 4, 3, 1, 3, 1, 1, 2, 2))[0]
        return Item((word,), f"{name} #{imm:#x}" if name in ("hvc", "svc", "brk", "hlt",
                                                              "udf") else name)

    def _sysreg(self) -> Item:
        rng = self.rng
        if rng.random() < 0.85:
            name, enc = SYSREGS[rng.randrange(len(SYSREGS))]
        else:
            enc = (rng.choice((2, 3)), rng.randrange(8), rng.randrange(16), rng.randrange(16),
                   rng.randrange(8))
            name = "S{}_{}_C{}_C{}_{}".format(*enc)
        rt = rng.randrange(2, 16)
        if rng.random() < 0.5:
            return Item((sysreg_op(True, rt, *enc),), f"mrs x{rt}, {name}")
        value = self.value()
        if name == "SCTLR_EL1" and rng.random() < 0.8:
            value &= ~1  # the MMU mostly stays off
        words = [*mov_imm(rt, value), sysreg_op(False, rt, *enc)]
        return Item(tuple(words), f"msr {name}, {value:#x}")


def generate(seed: int, count: int) -> GuestProgram:
    """A random program of ``count`` items."""
    rng = random.Random(seed)
    gen = StreamGenerator(rng)
    return GuestProgram(tuple(gen.item() for _ in range(count)), seed)


def _frame_source() -> str:
    lines = ["vectors:"]
    for i in range(16):
        lines += [
            "    .balign 0x80",
            "    mrs x17, ESR_EL1",
            "    ubfx x17, x17, #26, #6",
            "    cmp x17, #0x20",
            f"    b.eq .Lbail{i}",
            "    cmp x17, #0x21",
            f"    b.eq .Lbail{i}",
            "    mrs x17, ELR_EL1",
            "    add x17, x17, #4",
            "    msr ELR_EL1, x17",
            "    eret",
            f".Lbail{i}:",
            "    mov x17, #0x3c5",
            "    msr SPSR_EL1, x17",
            "    adr x17, fz_epilogue",
            "    msr ELR_EL1, x17",
            "    eret",
        ]
    lines += [
        "    .balign 0x800",
        "fz_prologue:",
        "    adr x17, vectors",
        "    msr VBAR_EL1, x17",
        "    isb",
        "    b fz_stream",
        "fz_epilogue:",
        "    movz x0, #0x8",
        "    movk x0, #0x8400, lsl #16",
        "    smc #0",
        "fz_park:",
        "    wfi",
        "    b fz_park",
        "    .balign 0x40",
        "fz_stream:",
    ]
    return "\n".join(lines) + "\n"


def code_image(program: GuestProgram) -> bytes:
    """The frame (vectors, prologue at CODE + 0x800, epilogue) and the program's stream,
    ending in a branch to the epilogue."""
    frame = assemble(_frame_source(), CODE)
    if frame.symbol("fz_stream") != STREAM or frame.symbol("fz_epilogue") != EPILOGUE:
        raise AssertionError("unexpected frame layout")
    stream = program.words()
    stream.append(branch(STREAM + 4 * len(stream), EPILOGUE))
    data = frame.data + b"".join(w.to_bytes(4, "little") for w in stream)
    if len(data) > DATA_IPA - CODE:
        raise ValueError("program too long")
    return data


# ============================================================================ running
@dataclass
class GuestRun:
    """The outcome of one program: how it ended, the exits it took, the failure if any."""

    program: GuestProgram
    failure: Failure | None
    end: str
    exits: dict[str, int]
    entries: int
    seconds: float

    def report(self, expect: str | None = None) -> int:
        """Print the failure; for reproducers: assert it is the ``expect``-ed one."""
        if self.failure is None:
            print(f"no failure in {self.entries} REC entries (end: {self.end})")
        else:
            print(f"reproduced: {self.failure}")
            if self.failure.detail:
                print(self.failure.detail.rstrip())
        if expect is not None:
            got = self.failure.signature if self.failure is not None else None
            assert got == expect, f"expected failure {expect}, got {got}"
        return 0


class _End(Exception):
    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


class _Fail(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


class GuestHarness:
    """Builds the realms for one program and runs it (see the module docstring)."""

    def __init__(self, program: GuestProgram, config: PlatformConfig = GUEST_CONFIG, *,
                 max_exits: int = GUEST_MAX_EXITS, time_limit: float = GUEST_TIME_LIMIT_S) -> None:
        self.program = program
        self.config = config
        self.rng = random.Random(program.seed ^ 0x5EED)
        self.max_exits = max_exits
        self.time_limit = time_limit
        self.p = Platform(config, check_invariants=True)
        self.vmm = Vmm(self.p)
        self.client: RmiClient = self.vmm.client
        self.builder: RealmBuilder = self.vmm.builder
        self.exits: dict[str, int] = {}
        self.entries = 0
        self.fault_ins = 0
        gpt = self.p.monitor.gpt
        self.gpt_span = (gpt.l0_base,
                         gpt.l1_pool + gpt.l1_slots * gpt.geometry.l1_table_size - gpt.l0_base)
        self.realm_port = self.p.cpus[0].probe(SecurityState.REALM)
        ns = self.p.region("ns_dram")
        pool = self.client.pool
        self.sample = sorted({ns.base + self.rng.randrange(ns.size // G) * G
                              for _ in range(16)} - set(range(pool.base, pool.end, G)))

    # ------------------------------------------------------------------ building
    def build(self) -> tuple[RealmVm, RealmVm]:
        rng = self.rng
        other_spec = RealmSpec(
            segments=(Segment(CODE, rng.randbytes(2 * G)),), entry=CODE,
            ram=((CODE, 4 * G),), s2sz=S2SZ, vmid=2, rpv=b"bystander".ljust(64, b"\0"))
        other = self.vmm.create(other_spec)
        code = code_image(self.program)
        spec = RealmSpec(
            segments=(Segment(CODE, code), Segment(DATA_IPA, rng.randbytes(G))),
            entry=CODE + 0x800, ram=((CODE, RAM_SIZE),), s2sz=S2SZ, vcpus=2, vmid=1,
            shared=((SHARED_IPA, G),), uart_ipa=UART_IPA)
        vm = self.vmm.create(spec)
        return vm, other

    # ------------------------------------------------------------------ snapshots
    def _granules_of(self, vm: RealmVm) -> set[int]:
        """The granules a realm's own run may change: its DATA, RD, RECs and their aux."""
        h = vm.handle
        out = set(h.data.values()) | set(vm.faulted_in.values()) | {h.rd} | set(vm.recs)
        for rec in vm.recs:
            out.update(h.aux[rec])
        return out

    def _other_granules(self, other: RealmVm) -> list[int]:
        h = other.handle
        out = [h.rd, *(h.rtt_base + i * G for i in range(h.num_start)), *h.rtts.values(),
               *h.data.values()]
        for rec in other.recs:
            out += [rec, *h.aux[rec]]
        return out

    def snapshot(self, vm: RealmVm, other: RealmVm, idx: int) -> dict[str, Any]:
        mem = self.p.memory
        pool = self.client.pool
        lo, hi = pool.base, pool._next
        skip = self._granules_of(vm) | set(vm.shared_pages.values())
        ns = {g: mem.read(g, G) for g in range(lo, hi, G) if g not in skip}
        ns.update({g: mem.read(g, G) for g in self.sample})
        run = vm.run_pages[idx]
        ns[run] = mem.read(run, REC_EXIT_OFFSET)
        others = {g: self.realm_port.read(g, G, Pas.REALM) for g in self._other_granules(other)}
        return {"gpt": mem.read(*self.gpt_span), "ns": ns, "other": others}

    def compare(self, before: dict[str, Any], vm: RealmVm, other: RealmVm, entry: int) -> None:
        mem = self.p.memory
        if mem.read(*self.gpt_span) != before["gpt"]:
            raise _Fail(Failure("memory", "gpt", entry,
                                "the GPT changed while the realm ran"))
        for g, old in before["other"].items():
            if self.realm_port.read(g, G, Pas.REALM) != old:
                raise _Fail(Failure("memory", "other-realm", entry,
                                    f"granule {g:#x} of another realm changed while the "
                                    "realm ran"))
        for g, old in before["ns"].items():
            if mem.read(g, len(old)) != old:
                what = ("its RecRun entry area" if len(old) != G else
                        "an RTT of the realm" if g in vm.handle.rtts.values() else
                        "a granule the host allocated")
                raise _Fail(Failure("memory", "ns", entry,
                                    f"{what} at {g:#x} changed while the realm ran"))

    # ------------------------------------------------------------------ the loop
    def run(self) -> GuestRun:
        start = time.perf_counter()
        failure: Failure | None = None
        end = "exit_limit"
        try:
            try:
                secure = self.p.region("secure_dram")
                secure_before = self.p.memory.read(secure.base, secure.size)
                vm, other = self.build()
                end = self._loop(vm, other, start)
                if self.p.memory.read(secure.base, secure.size) != secure_before:
                    raise _Fail(Failure("memory", "secure", self.entries,
                                        "Secure DRAM changed while the realm ran"))
                self._teardown(vm)
            except _Fail as f:
                failure = f.failure
            except Exception as exc:
                failure = exception_failure(exc, self.entries, f"REC entry {self.entries}"
                                            if self.entries else "building the realms")
        finally:
            dispose(self.p)
        return GuestRun(self.program, failure, end, dict(self.exits), self.entries,
                        time.perf_counter() - start)

    def _loop(self, vm: RealmVm, other: RealmVm, start: float) -> str:
        runnable = [0]
        pending: dict[int, tuple[int, list[int]]] = {}
        for turn in range(self.max_exits):
            if not runnable:
                return "no_runnable_vcpu"
            if time.perf_counter() - start > self.time_limit:
                return "time_limit"
            idx = runnable[turn % len(runnable)]
            try:
                self._enter(vm, other, idx, pending, runnable)
            except _End as e:
                return e.how
        return "exit_limit"

    def _enter(self, vm: RealmVm, other: RealmVm, idx: int,
               pending: dict[int, tuple[int, list[int]]], runnable: list[int]) -> None:
        host = self.p.cpus[idx % len(self.p.cpus)].host
        run = vm.run_pages[idx]
        flags, gprs = pending.pop(idx, (0, []))
        enter = REC_ENTER.pack({"flags": flags,
                                "gprs": pack_words(gprs + [0] * (31 - len(gprs)))})
        host.write(run, enter)
        entry = self.entries
        self.entries += 1
        before = self.snapshot(vm, other, idx)
        t0 = time.perf_counter()
        try:
            x = host.smc(REC_ENTER_FID, vm.recs[idx], run)
        except Exception as exc:
            raise _Fail(exception_failure(exc, entry, f"RMI_REC_ENTER (entry {entry})")) from exc
        took = time.perf_counter() - t0
        if took > HANG_S:
            raise _Fail(Failure("hang", "rec_enter", entry,
                                f"RMI_REC_ENTER took {took:.1f} s"))
        self.compare(before, vm, other, entry)
        status, index = x[0] & 0xFF, (x[0] >> 8) & 0xFF
        if x[0] != 0:
            if x[0] >> 16 or not 1 <= status <= 4:
                raise _Fail(Failure("exit", "status", entry,
                                    f"RMI_REC_ENTER returned an undefined status {x[0]:#x}"))
            if status == 2 and index == 1:
                raise _End("system_off")
            raise _End(f"rec_enter_error_{status}")
        ex = REC_EXIT.unpack(host.read(run + REC_EXIT_OFFSET, REC_EXIT.size))
        reason = int(ex["exit_reason"])
        if reason not in RecExitReason._value2member_map_:
            raise _Fail(Failure("exit", "reason", entry, f"exit reason {reason} is undefined"))
        name = RecExitReason(reason).name
        self.exits[name] = self.exits.get(name, 0) + 1
        getattr(self, f"_exit_{name.lower()}")(vm, idx, ex, entry, pending, runnable)

    # ------------------------------------------------------------------ exits
    def _exit_sync(self, vm: RealmVm, idx: int, ex: dict[str, Any], entry: int,
                   pending: dict[int, tuple[int, list[int]]], runnable: list[int]) -> None:
        esr = int(ex["esr"])
        ec = esr >> 26
        if ec not in SYNC_ECS or (ec == 0 and esr):
            raise _Fail(Failure("exit", f"sync-ec-{ec:#x}", entry,
                                f"a SYNC exit with ESR {esr:#x} (EC {ec:#x})"))
        if ec not in (0x20, 0x24):
            return  # WFx, trapped GIC registers: nothing to emulate
        ipa = ((int(ex["hpfar"]) >> 4) << 12) | (int(ex["far"]) & 0xFFF)
        if ipa >= UNPROTECTED:
            if ec == 0x24 and esr & (1 << 24):
                pending[idx] = (ENTER_EMUL_MMIO, [self.rng.choice(
                    (0, MASK64, self.rng.getrandbits(64)))])
            else:
                pending[idx] = (ENTER_INJECT_SEA, [])
            return
        page = ipa & ~(G - 1)
        if not CODE <= page < CODE + RAM_SIZE or page in vm.faulted_in or (
                page in vm.handle.data) or self.fault_ins >= MAX_FAULT_INS:
            raise _End("unresolved_abort")
        self.fault_ins += 1
        self.builder.ensure_table(vm.handle, page, 3)
        data = self.client.new_delegated()
        r = self.client.call("DATA_CREATE_UNKNOWN", vm.handle.rd, data, page)
        if not r.ok:
            self.client.undelegate(data)
            raise _End("fault_in_refused")
        vm.faulted_in[page] = data

    def _exit_psci(self, vm: RealmVm, idx: int, ex: dict[str, Any], entry: int,
                   pending: dict[int, tuple[int, list[int]]], runnable: list[int]) -> None:
        regs = words(ex["gprs"], 2)
        fid = regs[0]
        if fid not in PSCI_EXITS:
            raise _Fail(Failure("exit", "psci-fid", entry,
                                f"a PSCI exit for function {fid:#x}"))
        if fid in (abi.PSCI_SYSTEM_OFF, abi.PSCI_SYSTEM_RESET):
            raise _End("system_off" if fid == abi.PSCI_SYSTEM_OFF else "system_reset")
        if fid == abi.PSCI_CPU_OFF:
            runnable.remove(idx)
            return
        if fid in (abi.PSCI_CPU_ON, 0x8400_0003, abi.PSCI_AFFINITY_INFO, 0x8400_0004):
            target = abi.mpidr_to_rec_index(regs[1])
            if target >= len(vm.recs):
                raise _End("psci_bad_target")
            status = 0 if self.rng.random() < 0.8 else self.rng.choice(
                (-1 & MASK64, -3 & MASK64, -4 & MASK64))
            r = self.client.call("PSCI_COMPLETE", vm.recs[idx], vm.recs[target], status)
            if not r.ok:
                raise _End("psci_complete_refused")
            if fid in (abi.PSCI_CPU_ON, 0x8400_0003) and status == 0 and (
                    target not in runnable):
                runnable.append(target)

    def _exit_ripas_change(self, vm: RealmVm, idx: int, ex: dict[str, Any], entry: int,
                           pending: dict[int, tuple[int, list[int]]],
                           runnable: list[int]) -> None:
        base, top, value = int(ex["ripas_base"]), int(ex["ripas_top"]), int(ex["ripas_value"])
        if not (base < top <= 1 << (S2SZ - 1)) or base % G or top % G or value > 1:
            raise _Fail(Failure("exit", "ripas-change", entry,
                                f"a RIPAS change exit [{base:#x}, {top:#x}) -> {value}"))
        if self.rng.random() < 0.3:
            pending[idx] = (ENTER_RIPAS_REJECT, [])
            return
        addr = base
        while addr < top:
            r = self.client.call("RTT_SET_RIPAS", vm.handle.rd, vm.recs[idx], addr, top)
            if r.status == 4 and r.index < 3:
                self.builder.ensure_table(vm.handle, addr, r.index + 1)
                continue
            if not r.ok:
                break
            addr = r[1]
        pending[idx] = (0, [])

    def _exit_host_call(self, vm: RealmVm, idx: int, ex: dict[str, Any], entry: int,
                        pending: dict[int, tuple[int, list[int]]],
                        runnable: list[int]) -> None:
        regs = words(ex["gprs"], 31)
        if self.rng.random() < 0.5:
            regs = [self.rng.getrandbits(64) for _ in range(31)]
        pending[idx] = (0, regs)

    def _exit_irq(self, *args: Any) -> None:
        return None

    _exit_fiq = _exit_irq
    _exit_serror = _exit_irq

    # ------------------------------------------------------------------ teardown
    def _teardown(self, vm: RealmVm) -> None:
        try:
            self.vmm.destroy(vm)
        except (AssertionError, RuntimeError) as err:
            last = self.p.rmm.last_error
            raise _Fail(Failure("teardown", type(err).__name__, self.entries,
                                f"tearing the realm down failed: {err or last}")) from err
        if self.p.checker is not None:
            self.p.checker.verify("after the realm's teardown", full=True)


def run_program(program: GuestProgram, config: PlatformConfig = GUEST_CONFIG, *,
                max_exits: int = GUEST_MAX_EXITS,
                time_limit: float = GUEST_TIME_LIMIT_S) -> GuestRun:
    """Run one program on a fresh platform."""
    return GuestHarness(program, config, max_exits=max_exits, time_limit=time_limit).run()


def run_guest(seed: int, steps: int, config: PlatformConfig = GUEST_CONFIG, *,
              max_exits: int = GUEST_MAX_EXITS, time_limit: float = GUEST_TIME_LIMIT_S) -> GuestRun:
    """Generate a program of ``steps`` items from ``seed`` and run it."""
    return run_program(generate(seed, steps), config, max_exits=max_exits,
                       time_limit=time_limit)


# ============================================================================ shrinking
def shrink_program(
    program: GuestProgram,
    failure: Failure,
    config: PlatformConfig = GUEST_CONFIG,
    *,
    max_tests: int = 300,
    budget_s: float = 60.0,
    stats: ShrinkStats | None = None,
    max_exits: int = GUEST_MAX_EXITS,
    time_limit: float = GUEST_TIME_LIMIT_S,
) -> GuestProgram:
    """The smallest sub-list of the program's items (delta debugging) that still fails
    with ``failure``'s signature."""
    signature = failure.signature

    def still_fails(items: list[Item]) -> bool:
        r = run_program(GuestProgram(tuple(items), program.seed), config,
                        max_exits=max_exits, time_limit=time_limit)
        return r.failure is not None and r.failure.signature == signature

    if not still_fails(list(program.items)):
        return program
    items = shrink(list(program.items), still_fails, max_tests=max_tests, budget_s=budget_s,
                   stats=stats)
    return GuestProgram(tuple(items), program.seed)


def reproducer(program: GuestProgram, failure: Failure | None = None, *,
               config: PlatformConfig = GUEST_CONFIG, title: str = "",
               max_exits: int = GUEST_MAX_EXITS, time_limit: float = GUEST_TIME_LIMIT_S) -> str:
    """A standalone script that runs ``program`` on a fresh platform and asserts the
    failure happens again (exit 0 after printing it; AssertionError once it is gone)."""
    if failure is None:
        failure = run_program(program, config, max_exits=max_exits,
                              time_limit=time_limit).failure
        if failure is None:
            raise ValueError("the program does not fail")
    lines = [
        *reproducer_header("guest", title, f"{len(program.items)} items", failure),
        "from ccasim import PlatformConfig",
        "from ccasim.fuzz.guest import GuestProgram, Item, run_program",
        "",
        "ITEMS = [",
    ]
    for item in program.items:
        ws = ", ".join(f"{w:#010x}" for w in item.words)
        comma = "," if len(item.words) == 1 else ""
        lines.append(f"    Item(({ws}{comma}), {item.text!r}),")
    lines += [
        "]",
        f"program = GuestProgram(tuple(ITEMS), seed={program.seed})",
        f"result = run_program(program, {config_python(config)}, max_exits={max_exits}, "
        f"time_limit={time_limit})",
        f"sys.exit(result.report(expect={failure.signature!r}))",
        "",
    ]
    return "\n".join(lines)


__all__ = ["GUEST_CONFIG", "GuestHarness", "GuestProgram", "GuestRun", "Item",
           "StreamGenerator", "code_image", "generate", "mov_imm", "reproducer",
           "run_guest", "run_program", "shrink_program", "sysreg_op"]
