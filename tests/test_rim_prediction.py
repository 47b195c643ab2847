"""Offline RIM prediction (``ccasim.attestation.rim.predict_rim``) against the RMM.

A Hypothesis test builds random realms through the VMM (REALM_CREATE, INIT_RIPAS over every
RAM range, DATA_CREATE, REC_CREATE) and checks the prediction against the RIM the RMM holds
in the RD. RAM ranges are placed around 2 MiB / 1 GiB / 512 GiB boundaries, so INIT_RIPAS
runs at several RTT levels (and, for s2sz 32..33 and 41..43, over concatenated root tables).
The confirmed vector of attestation.md §5 is reproduced without and with a RealmSpec.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccasim import Platform, PlatformConfig, SecurityState
from ccasim.attestation.rim import predict_rim
from ccasim.host.rmi import RealmBuilder, RmiClient
from ccasim.host.vmm import RealmSpec, Segment, Vmm
from ccasim.rmm import measurement
from ccasim.rmm.objects import Realm

K4, M2, G1, G512 = 1 << 12, 1 << 21, 1 << 30, 1 << 39
MASK64 = (1 << 64) - 1

# attestation.md §5, step 1 (cca-realm-measurements tests/event_log.rs).
V1_HEX = "8960d56826370aaa6fc9b3a041d4240689582ba41e2ad8bb8f9adf6d2a0cd5e7"
V1_B64 = "iWDVaCY3CqpvybOgQdQkBolYK6QeKti7j5rfbSoM1ec="


@cache
def _platform() -> Platform:
    # FVP-like debug resources: 6 breakpoints, 4 watchpoints (a realm asks for count - 1),
    # so num_bps 1..5 and num_wps 1..3 are all valid.
    return Platform(PlatformConfig(cpus=2, num_bps=6, num_wps=4))


def _rmm_rim(p: Platform, rd: int) -> bytes:
    with p.cpus[0].probe(SecurityState.REALM)._running() as pe:
        return Realm.load(pe, rd).rim


# ------------------------------------------------------------------------------ strategies

def _span(boundary: int) -> st.SearchStrategy[int]:
    """A distance from a boundary: whole 4 KiB granules, 2 MiB blocks, 1 GiB blocks (and a
    512 GiB block when the boundary is that large), each count possibly zero."""
    parts = [
        st.integers(0, 520).map(lambda n: n * K4),
        st.integers(0, 3).map(lambda n: n * M2) | st.integers(0, 520).map(lambda n: n * M2),
        st.integers(0, 1).map(lambda n: n * G1),
    ]
    if boundary >= G512:
        parts.append(st.integers(0, 1).map(lambda n: n * G512))
    return st.tuples(*parts).map(sum)


@st.composite
def _ram_range(draw: st.DrawFn, par: int) -> tuple[int, int]:
    boundaries = [b for b in (M2, G1, G512) if b < par]
    boundary = draw(st.sampled_from(boundaries))
    point = boundary * draw(st.integers(1, par // boundary - 1))
    below, above = draw(_span(boundary)), draw(_span(boundary))
    base = max(point - below, 0)
    top = min(point + above, par)
    if top <= base:  # both distances zero: one granule at the boundary
        base = min(point, par - K4)
        top = base + K4
    return base, top - base


@st.composite
def realm_specs(draw: st.DrawFn) -> RealmSpec:
    s2sz = draw(st.integers(32, 44))
    par = 1 << (s2sz - 1)
    ram: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(1, 3))):
        base, size = draw(_ram_range(par))
        # Disjoint (but possibly adjacent) ranges: drop a range that overlaps an earlier one.
        if all(base + size <= b or b + s <= base for b, s in ram):
            ram.append((base, size))
    segments = []
    for _ in range(draw(st.integers(0, 4))):
        base, size = draw(st.sampled_from(ram))
        length = draw(st.integers(1, min(size, 3 * K4)))
        start = base + draw(st.integers(0, size - length))  # any byte offset, unaligned too
        data = draw(st.binary(min_size=length, max_size=length))
        segments.append(Segment(start, data, measured=draw(st.booleans())))
    entry_range = draw(st.sampled_from(ram))
    entry = entry_range[0] + 4 * draw(st.integers(0, entry_range[1] // 4 - 1))
    return RealmSpec(
        segments=tuple(segments),
        entry=entry,
        ram=tuple(draw(st.permutations(ram))),
        s2sz=s2sz,
        hash_algorithm=draw(st.sampled_from(["sha256", "sha512", "SHA-256", "sha-512"])),
        rpv=draw(st.binary(max_size=64)).ljust(64, b"\0"),
        vcpus=draw(st.integers(1, 3)),
        boot_args=tuple(draw(st.lists(st.integers(0, MASK64), max_size=8))),
        num_bps=draw(st.integers(1, 5)),
        num_wps=draw(st.integers(1, 3)),
    )


# ------------------------------------------------------------------------------ tests

@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=realm_specs())
def test_predicted_rim_equals_the_rmm_rim(spec: RealmSpec) -> None:
    p = _platform()
    vmm = Vmm(p)
    vm = vmm.create(spec)
    try:
        actual = _rmm_rim(p, vm.handle.rd)
        trace = predict_rim(spec)
        assert trace.rim == actual
        size = 32 if spec.algorithm == 0 else 64
        assert len(trace.rim) in (size, 64) and trace.rim[size:] == bytes(len(trace.rim) - size)
        # One step per measured command: REALM_CREATE, RIPAS entries, DATA pages, 1 REC.
        assert trace.steps[0][0] == "REALM_CREATE"
        assert sum(name.startswith("DATA_CREATE") for name, _ in trace.steps) == len(
            spec.data_pages())
        assert trace.steps[-1][0].startswith("REC_CREATE")
    finally:
        vmm.destroy(vm)
    assert p.rmm.tracker.nonzero() == []


def test_rim_depends_on_measured_inputs_only() -> None:
    """The RPV and the VMID are not measured; the content of an unmeasured page is not
    either, but its IPA is; everything else changes the RIM."""
    seg = Segment(0x8000_0100, b"payload" * 100)
    base = RealmSpec(segments=(seg,), entry=0x8000_0100, boot_args=(1, 2))
    rim = predict_rim(base).rim
    assert predict_rim(replace(base, rpv=b"x" * 64, vmid=7)).rim == rim
    unmeasured = replace(base, segments=(Segment(seg.ipa, seg.data, measured=False),))
    other_content = replace(base, segments=(Segment(seg.ipa, b"other" * 100, measured=False),))
    assert predict_rim(unmeasured).rim == predict_rim(other_content).rim != rim
    for same in (
        replace(base, boot_args=(1, 2, 0)),  # the same x0..x7 image
        replace(base, vcpus=2),  # secondary vCPUs are not runnable: not measured
        replace(base, hash_algorithm="SHA-256"),
    ):
        assert predict_rim(same).rim == rim, same
    for changed in (
        replace(base, segments=(Segment(seg.ipa, b"Payload" * 100),)),
        replace(base, segments=(Segment(seg.ipa + 0x1000, seg.data),)),
        replace(base, entry=0x8000_0104),
        replace(base, boot_args=(1, 3)),
        replace(base, ram=((0x8000_0000, 0x40_0000),)),
        replace(base, s2sz=41),
        replace(base, num_bps=2),
        replace(base, num_wps=2),
        replace(base, hash_algorithm="sha512"),
    ):
        assert predict_rim(changed).rim != rim, changed


def test_confirmed_vector_from_rim_init() -> None:
    """attestation.md §5 step 1 without a RealmSpec: SHA-256 of a zeroed 4096-byte
    RmiRealmParams holding only s2sz = 48, num_bps = 5, num_wps = 3."""
    image = bytearray(4096)
    image[0x08], image[0x18], image[0x20] = 48, 5, 3
    got = measurement.rim_init(
        measurement.HashAlgorithm.SHA_256,
        {"flags": 0, "s2sz": 48, "sve_vl": 0, "num_bps": 5, "num_wps": 3,
         "pmu_num_ctrs": 0, "hash_algo": 0},
    )
    assert got[:32].hex() == V1_HEX
    assert hashlib.sha256(bytes(image)).digest() == base64.b64decode(V1_B64) == got[:32]


def test_confirmed_vector_through_realm_create() -> None:
    p = _platform()
    c = RmiClient(p)
    b = RealmBuilder(c)
    realm = b.create(s2sz=48, num_bps=5, num_wps=3, hash_algo=0, vmid=0x3FF,
                     rpv=b"not measured".ljust(64, b"\0"))
    try:
        assert _rmm_rim(p, realm.rd)[:32].hex() == V1_HEX
    finally:
        b.destroy(realm)
    assert p.rmm.tracker.nonzero() == []
    # The first step of a prediction for such a realm is the same value.
    spec = RealmSpec(segments=(), entry=0, s2sz=48, num_bps=5, num_wps=3, vcpus=0, ram=())
    assert predict_rim(spec).steps[0][1][:32].hex() == V1_HEX


@pytest.mark.parametrize("s2sz", [32, 33, 40, 41, 44])
def test_ripas_over_concatenated_root_tables(s2sz: int) -> None:
    """Deterministic corner: a range that starts one granule below and ends one granule above
    a boundary of the starting level's entries."""
    p = _platform()
    par = 1 << (s2sz - 1)
    boundary = G1 if s2sz <= 33 else G512
    point = boundary if boundary < par else par // 2
    spec = RealmSpec(segments=(Segment(point - 8, b"\xAA" * 16),), entry=point,
                     ram=((point - K4, 2 * K4), (0, K4)), s2sz=s2sz)
    vmm = Vmm(p)
    vm = vmm.create(spec)
    try:
        assert predict_rim(spec).rim == _rmm_rim(p, vm.handle.rd)
    finally:
        vmm.destroy(vm)
    assert p.rmm.tracker.nonzero() == []
