"""A host-side rig for end-to-end realm tests (imported as ``realm_rig``).

Everything goes through the RMI from the Normal world: realms are built with
:class:`~ccasim.host.rmi.RealmBuilder`, RECs are entered with a raw RMI_REC_ENTER on a RecRun
page this module writes and reads itself, so every field of the exit can be checked.

Guests are small AArch64 programs (keystone, through :func:`ccasim.guest.asm.assemble`) built
from a fixed frame:

* ``_start`` points x28 at ``hc`` (an RsiHostCall struct in its own data granule) and
  VBAR_EL1 at ``vectors``, then runs the test's body;
* :func:`dump` stores x0..x30 into ``hc`` and issues RSI_HOST_CALL with an ``imm``: the host
  sees the guest's registers at that point in the HOST_CALL exit (gprs[i] = xi);
* every exception vector records ESR_EL1 (x24), FAR_EL1 (x25), ELR_EL1 (x26), SPSR_EL1
  (x23) and its own offset (x27), dumps with ``imm`` = :data:`IMM_EXCEPTION`, then returns
  to x21 if the body set it (one shot), else to ELR_EL1 + 4.

So the body must leave x21..x28 alone (x21 may hold a resume address), and a dump
clobbers x0, x1 and x9.

Constants are written down from the digest (rmm-abi §2, §7, §8, §9 and the errata) rather than
imported from the code under test.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from ccasim import Platform, PlatformConfig
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.guest.asm import Image, assemble
from ccasim.host.rmi import RealmBuilder, RealmHandle, RmiClient, RmiResult

MASK64 = (1 << 64) - 1
GRANULE = 0x1000

# IPA layout of the test realms (s2sz = 40: PAR = [0, 2^39))
S2SZ = 40
GUEST = 0x8000_0000  # code, then the data granules of the image
RAM_SIZE = 0x4_0000  # RIPAS RAM from GUEST (64 pages); pages not in the image stay unassigned
UNPROT = 1 << (S2SZ - 1)
MMIO = UNPROT + 0x0100_0000  # an unprotected IPA with no mapping (emulated MMIO)
EMPTY_IPA = 0x4000_0000  # protected, RIPAS EMPTY (never INIT_RIPASed)

# RmiStatus (§2.2)
SUCCESS, ERROR_INPUT, ERROR_REALM, ERROR_REC, ERROR_RTT = 0, 1, 2, 3, 4
# RmiRecExitReason (§7.2)
SYNC, IRQ, FIQ, PSCI, RIPAS_CHANGE, HOST_CALL, SERROR = range(7)
# RmiRecEnter.flags (§8.3)
EMUL_MMIO, INJECT_SEA, TRAP_WFI, TRAP_WFE, RIPAS_REJECT = 1, 2, 4, 8, 16
# RSI (§9)
RSI_VERSION = 0xC400_0190
RSI_FEATURES = 0xC400_0191
RSI_MEASUREMENT_READ = 0xC400_0192
RSI_MEASUREMENT_EXTEND = 0xC400_0193
RSI_TOKEN_INIT = 0xC400_0194
RSI_TOKEN_CONTINUE = 0xC400_0195
RSI_REALM_CONFIG = 0xC400_0196
RSI_IPA_STATE_SET = 0xC400_0197
RSI_IPA_STATE_GET = 0xC400_0198
RSI_HOST_CALL = 0xC400_0199
RSI_SUCCESS, RSI_ERROR_INPUT, RSI_ERROR_STATE, RSI_INCOMPLETE, RSI_ERROR_UNKNOWN = range(5)
# PSCI (§9)
PSCI_VERSION = 0x8400_0000
PSCI_CPU_SUSPEND = 0xC400_0001
PSCI_CPU_OFF = 0x8400_0002
PSCI_CPU_ON = 0xC400_0003
PSCI_AFFINITY_INFO = 0xC400_0004
PSCI_SYSTEM_OFF = 0x8400_0008
PSCI_SYSTEM_RESET = 0x8400_0009
PSCI_FEATURES = 0x8400_000A
SMCCC_VERSION = 0x8000_0000
PSCI_SUCCESS, NOT_SUPPORTED, INVALID_PARAMS, DENIED, ALREADY_ON = 0, -1, -2, -3, -4
INVALID_ADDRESS = -9
# ESR fields
EC_SHIFT = 26
IL = 1 << 25
ISV = 1 << 24
EA = 1 << 9
WNR = 1 << 6

IMM_EXCEPTION = 0xEEEE
SENTINEL = 0x5EED_0000_0000_0000


def u64(value: int) -> int:
    return value & MASK64


def ec(esr: int) -> int:
    return (esr >> EC_SHIFT) & 0x3F


# ------------------------------------------------------------------ guest assembly


def load_imm(reg: str, value: int) -> str:
    """movz/movk lines for ``value``."""
    value &= MASK64 if reg.startswith("x") else 0xFFFF_FFFF
    parts = [(s, (value >> s) & 0xFFFF) for s in range(0, 64 if reg.startswith("x") else 32, 16)]
    parts = [p for p in parts if p[1]] or [(0, 0)]
    lines = [f"    movz {reg}, #{parts[0][1]:#x}, lsl #{parts[0][0]}"]
    lines += [f"    movk {reg}, #{v:#x}, lsl #{s}" for s, v in parts[1:]]
    return "\n".join(lines) + "\n"


def dump(imm: int) -> str:
    """Store x0..x30 in ``hc`` (x28) and RSI_HOST_CALL with ``imm``."""
    lines = [f"    stp x{i}, x{i + 1}, [x28, #{8 + 8 * i}]" for i in range(0, 30, 2)]
    lines.append("    str x30, [x28, #248]")
    lines.append(f"    movz w9, #{imm:#x}")
    lines.append("    str w9, [x28]")
    lines.append("    mov x1, x28")
    return "\n".join(lines) + "\n" + load_imm("x0", RSI_HOST_CALL) + "    smc #0\n"


def operand(reg: str, value: int | str) -> str:
    """``reg`` := an integer, or the address of a label (a str)."""
    if isinstance(value, str):
        return f"    adr {reg}, {value}\n"
    return load_imm(reg, value)


def call(fid: int, *args: int | str, imm: int = 0, fill: bool = True) -> str:
    """x1.. = args (x2..x20 pre-filled with SENTINEL|n when ``fill``), x0 = fid, smc, dump."""
    out = []
    if fill:
        out += [load_imm(f"x{n}", SENTINEL | n) for n in range(len(args) + 1, 21)]
    out += [operand(f"x{n + 1}", a) for n, a in enumerate(args)]
    out.append(load_imm("x0", fid) + "    smc #0\n")
    out.append(dump(imm))
    return "".join(out)


def source(body: str, *, data: str = "", text: str = "") -> str:
    """The guest frame around ``body`` (see the module docstring). ``data`` goes after the
    two host-call structs (``hc``, ``hc2``) in the first data granule; ``text`` is extra
    code placed after the body."""
    vectors = "".join(
        f"""\
    .balign 0x80
vec_{off:03x}:
    mrs x24, esr_el1
    mrs x25, far_el1
    mrs x26, elr_el1
    mrs x23, spsr_el1
    mov x27, #{off:#x}
    b vec_common
"""
        for off in range(0, 0x800, 0x80)
    )
    return f"""\
_start:
    adr x28, hc
    adr x9, vectors
    msr vbar_el1, x9
    isb
{body}
done:
{dump(0xD0DE)}
hang:
    b hang
{text}
vec_common:
{dump(IMM_EXCEPTION)}
    cbnz x21, vec_resume
    add x26, x26, #4
    b vec_ret
vec_resume:
    mov x26, x21
    mov x21, #0
vec_ret:
    msr elr_el1, x26
    msr spsr_el1, x23
    eret
    .balign 0x800
vectors:
{vectors}
    .balign 0x1000
hc:
    .skip 0x100
hc2:
    .skip 0x100
{data}
    .balign 0x1000
image_end:
"""


# ------------------------------------------------------------------ exits


@dataclass
class Exit:
    """The REC_ENTER status and, on success, the RmiRecExit fields (§8.3)."""

    status: int
    raw: bytes = b""
    reason: int = -1
    esr: int = 0
    far: int = 0
    hpfar: int = 0
    gprs: list[int] = field(default_factory=list)
    gicv3_hcr: int = 0
    gicv3_lrs: list[int] = field(default_factory=list)
    gicv3_misr: int = 0
    gicv3_vmcr: int = 0
    cntp_ctl: int = 0
    cntp_cval: int = 0
    cntv_ctl: int = 0
    cntv_cval: int = 0
    ripas_base: int = 0
    ripas_top: int = 0
    ripas_value: int = 0
    imm: int = 0
    pmu_ovf_status: int = 0

    @classmethod
    def parse(cls, status: int, raw: bytes) -> Exit:
        q = lambda off: struct.unpack_from("<Q", raw, off)[0]  # noqa: E731
        return cls(
            status=status,
            raw=raw,
            reason=q(0x000),
            esr=q(0x100),
            far=q(0x108),
            hpfar=q(0x110),
            gprs=list(struct.unpack_from("<31Q", raw, 0x200)),
            gicv3_hcr=q(0x300),
            gicv3_lrs=list(struct.unpack_from("<16Q", raw, 0x308)),
            gicv3_misr=q(0x388),
            gicv3_vmcr=q(0x390),
            cntp_ctl=q(0x400),
            cntp_cval=q(0x408),
            cntv_ctl=q(0x410),
            cntv_cval=q(0x418),
            ripas_base=q(0x500),
            ripas_top=q(0x508),
            ripas_value=raw[0x510],
            imm=struct.unpack_from("<I", raw, 0x600)[0],
            pmu_ovf_status=q(0x700),
        )

    def x(self, n: int) -> int:
        """Register xn of the guest at a :func:`dump` (HOST_CALL exit)."""
        assert self.reason == HOST_CALL, self
        return self.gprs[n]

    def __repr__(self) -> str:
        if self.status:
            return f"Exit(status={self.status:#x})"
        return (f"Exit(reason={self.reason}, esr={self.esr:#x}, far={self.far:#x}, "
                f"hpfar={self.hpfar:#x}, imm={self.imm:#x}, gprs[:4]="
                f"{[hex(g) for g in self.gprs[:4]]})")


def enter_image(flags: int = 0, gprs: Sequence[int] = (), hcr: int = 0,
                lrs: Sequence[int] = ()) -> bytes:
    """An RmiRecEnter (§8.3): flags @0, gprs @0x200, gicv3_hcr @0x300, gicv3_lrs @0x308."""
    page = bytearray(0x800)
    struct.pack_into("<Q", page, 0, flags)
    regs = list(gprs) + [0] * (31 - len(gprs))
    struct.pack_into("<31Q", page, 0x200, *(u64(r) for r in regs))
    struct.pack_into("<Q", page, 0x300, hcr)
    lr = list(lrs) + [0] * (16 - len(lrs))
    struct.pack_into("<16Q", page, 0x308, *lr)
    return bytes(page)


# ------------------------------------------------------------------ realms


class Guest:
    """A realm built from one image, its RECs and one RecRun page per REC."""

    def __init__(self, rig: Rig, handle: RealmHandle, image: Image, recs: list[int]) -> None:
        self.rig = rig
        self.handle = handle
        self.image = image
        self.recs = recs
        self.runs = [rig.c.pool.alloc() for _ in recs]

    def sym(self, name: str) -> int:
        return self.image.symbol(name)

    def rmi(self, name: str, *args: int) -> RmiResult:
        return self.rig.c.call(name, *args)

    def enter(self, rec: int = 0, *, flags: int = 0, gprs: Sequence[int] = (), hcr: int = 0,
              lrs: Sequence[int] = (), cpu: int = 0) -> Exit:
        """One RMI_REC_ENTER of REC ``rec`` from the Normal world of PE ``cpu``."""
        port = self.rig.p.cpus[cpu].host
        run = self.runs[rec]
        port.write(run, enter_image(flags, gprs, hcr, lrs))
        port.write(run + 0x800, b"\xa5" * 0x800)  # the RMM must write the whole exit
        x = port.smc(0xC400_015C, self.recs[rec], run)
        if x[0] != SUCCESS:
            return Exit(x[0])
        return Exit.parse(x[0], port.read(run + 0x800, 0x800))

    def run(self, rec: int = 0, *, flags: int = 0, gprs: Sequence[int] = (), cpu: int = 0,
            hcr: int = 0, lrs: Sequence[int] = ()) -> Exit:
        """REC_ENTER, re-entering (with only the WFx trap flags) after IRQ exits: a
        timeslice can end any run."""
        ex = self.enter(rec, flags=flags, gprs=gprs, cpu=cpu, hcr=hcr, lrs=lrs)
        for _ in range(50):
            if ex.status or ex.reason != IRQ:
                return ex
            ex = self.enter(rec, flags=flags & (TRAP_WFI | TRAP_WFE), cpu=cpu, hcr=hcr,
                            lrs=lrs)
        raise AssertionError("the REC keeps exiting with IRQ")

    def dump(self, rec: int = 0, *, imm: int | None = None, **kw: object) -> Exit:
        """Run to the next :func:`dump` (a HOST_CALL exit) and return it."""
        ex = self.run(rec, **kw)  # type: ignore[arg-type]
        assert ex.status == SUCCESS and ex.reason == HOST_CALL, ex
        if imm is not None:
            assert ex.imm == imm, f"imm {ex.imm:#x}, expected {imm:#x}; x0..x3 {ex.gprs[:4]}"
        return ex

    def pa(self, ipa: int) -> int:
        """The granule backing a protected IPA the host DATA_CREATEd."""
        return self.handle.data[ipa & ~(GRANULE - 1)]

    def realm_read(self, ipa: int, size: int) -> bytes:
        """Read realm memory as Root (verification only; the realm is driven by RMI)."""
        return self.rig.p.el3.read(self.pa(ipa) + (ipa & (GRANULE - 1)), size, Pas.REALM)

    def data_create_unknown(self, ipa: int) -> int:
        self.rig.b.ensure_table(self.handle, ipa, 3)
        g = self.rig.c.new_delegated()
        r = self.rmi("DATA_CREATE_UNKNOWN", self.handle.rd, g, ipa)
        assert r.ok, hex(r[0])
        self.handle.data[ipa] = g
        return g


class Rig:
    """A booted platform and an RMI client on PE 0's Normal world."""

    def __init__(self, cpus: int = 2) -> None:
        self.p = Platform(PlatformConfig(cpus=cpus))
        self.c = RmiClient(self.p)
        self.b = RealmBuilder(self.c)
        self._vmid = 1

    def realm(
        self,
        body: str = "",
        *,
        data: str = "",
        text: str = "",
        image: Image | None = None,
        recs: int = 1,
        ram: tuple[int, int] = (GUEST, RAM_SIZE),
        rec_gprs: Sequence[int] = (),
        runnable: Sequence[bool] | None = None,
        rpv: bytes = b"",
        hash_algo: int = 0,
        vmid: int | None = None,
        tables: Sequence[int] = (MMIO,),
        activate: bool = True,
        granules: dict[int, int] | None = None,
    ) -> Guest:
        """Build and activate a realm: REALM_CREATE, L3 tables over the RAM, INIT_RIPAS over
        ``ram``, DATA_CREATE of every image granule, ``recs`` RECs (only the first
        runnable unless ``runnable`` says otherwise), REALM_ACTIVATE. ``granules`` maps an
        image IPA to an already delegated granule to DATA_CREATE it into."""
        if image is None:
            image = assemble(source(body, data=data, text=text), GUEST)
        if vmid is None:
            vmid = self._vmid
            self._vmid += 1
        b = self.b
        h = b.create(s2sz=S2SZ, vmid=vmid, rpv=rpv, hash_algo=hash_algo)
        base, size = ram
        for ipa in range(base, base + size, 2 << 20):
            b.ensure_table(h, ipa, 3)
        for ipa in tables:
            b.ensure_table(h, ipa, 3)
        b.init_ripas(h, base, base + size)
        for ipa, page in image.granules():
            if granules and ipa in granules:
                src = self.c.write_page(page)
                r = self.c.call("DATA_CREATE", h.rd, granules[ipa], ipa, src, 1)
                assert r.ok, hex(r[0])
                h.data[ipa] = granules[ipa]
            else:
                b.add_data(h, ipa, page)
        flags = list(runnable) if runnable is not None else [i == 0 for i in range(recs)]
        rec_list = [
            b.add_rec(h, pc=image.entry if flags[i] else 0, gprs=rec_gprs if i == 0 else (),
                      runnable=flags[i])
            for i in range(recs)
        ]
        if activate:
            b.activate(h)
        return Guest(self, h, image, rec_list)
