"""A realm that fails to build leaves nothing behind (issue: bad input everywhere)."""

from __future__ import annotations

import pytest

from ccasim import Platform, PlatformConfig
from ccasim.host.vmm import RealmSpec, Segment, Vmm


def _boot_state(p: Platform) -> list[tuple[str, dict[int, int]]]:
    return [(r.name, counts) for r, counts in p.el3.gpt_summary()]


@pytest.mark.parametrize(
    "spec",
    [
        # image data beyond the protected IPA space: DATA_CREATE fails mid-way
        RealmSpec(segments=(Segment(0x8000_0000, b"x" * 5000), Segment(1 << 39, b"y")),
                  entry=0x8000_0000),
        # a second realm with the VMID of the first: REALM_CREATE fails
        RealmSpec(segments=(Segment(0x8000_0000, b"x"),), entry=0x8000_0000, vmid=7),
        # a shared window in the protected half: rejected after RECs exist
        RealmSpec(segments=(Segment(0x8000_0000, b"x"),), entry=0x8000_0000, vcpus=2,
                  shared=((0x9000_0000, 4096),)),
        # an s2sz the platform does not support
        RealmSpec(segments=(Segment(0x8000_0000, b"x"),), entry=0x8000_0000, s2sz=52),
    ],
)
def test_failed_builds_undelegate_everything(spec: RealmSpec) -> None:
    p = Platform(PlatformConfig(cpus=1))
    vmm = Vmm(p)
    keeper = vmm.create(RealmSpec(segments=(Segment(0x8000_0000, b"k"),), entry=0x8000_0000,
                                  vmid=7))
    tracked = p.rmm.tracker.nonzero()
    gpt = _boot_state(p)
    with pytest.raises((RuntimeError, ValueError)):
        vmm.create(spec)
    assert p.rmm.tracker.nonzero() == tracked  # only the first realm's granules remain
    assert _boot_state(p) == gpt
    vmm.destroy(keeper)
    assert p.rmm.tracker.nonzero() == []
