"""RMI status codes, failure conditions and the one exception type of the RMI.

A handler checks its failure conditions in the order the spec (as TF-RMM implements it)
gives them; a failed check raises :class:`RmiError`, which the RMI dispatcher alone turns
into registers: ``x0 = (index << 8) | status`` (rmm-abi §2.2) plus any outputs the command
defines for that failure.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn


class RmiStatus(enum.IntEnum):
    SUCCESS = 0
    ERROR_INPUT = 1
    ERROR_REALM = 2
    ERROR_REC = 3
    ERROR_RTT = 4


def pack_return(status: int, index: int = 0) -> int:
    """RmiReturnCode: status in bits [7:0], index in bits [15:8]."""
    return ((index & 0xFF) << 8) | (status & 0xFF)


class RmiError(Exception):
    """A failure condition of an RMI command."""

    def __init__(
        self,
        status: RmiStatus,
        index: int = 0,
        outputs: Sequence[int] = (),
        label: str = "",
    ) -> None:
        super().__init__(f"{status.name}({index}) [{label}]")
        self.status = status
        self.index = index
        self.outputs = tuple(outputs)
        self.label = label

    @property
    def code(self) -> int:
        return pack_return(self.status, self.index)


@dataclass(frozen=True)
class Condition:
    """One labelled failure condition (labels follow the spec / ACS names)."""

    label: str
    status: RmiStatus
    description: str

    def fail(self, index: int = 0, outputs: Sequence[int] = ()) -> NoReturn:
        raise RmiError(self.status, index, outputs, self.label)


class Conditions:
    """The ordered failure conditions of one command."""

    def __init__(self, command: str, conditions: Sequence[Condition]) -> None:
        self.command = command
        self._list = tuple(conditions)
        self._by_label = {c.label: c for c in self._list}
        if len(self._by_label) != len(self._list):
            raise ValueError(f"{command}: duplicate condition labels")

    def __getitem__(self, label: str) -> Condition:
        return self._by_label[label]

    def __iter__(self) -> Iterator[Condition]:
        return iter(self._list)

    def __len__(self) -> int:
        return len(self._list)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self._list]


INPUT = RmiStatus.ERROR_INPUT
REALM = RmiStatus.ERROR_REALM
REC = RmiStatus.ERROR_REC
RTT = RmiStatus.ERROR_RTT


def conditions(command: str, *rows: tuple[str, RmiStatus, str]) -> Conditions:
    return Conditions(command, [Condition(label, status, text) for label, status, text in rows])


# Observers of failure conditions (``ccasim.conformance`` records which conditions the test
# suite triggers): called with (interface, command, label) — interface "RMI" or "RSI" —
# whenever the RMI or RSI dispatcher turns a labelled failure into a result. Empty in normal
# runs, where the dispatchers pay one list test per failure and nothing otherwise.
CONDITION_LISTENERS: list[Callable[[str, str, str], None]] = []


def report_condition(interface: str, command: str, label: str) -> None:
    for listener in CONDITION_LISTENERS:
        listener(interface, command, label)
