"""Shared pytest configuration."""

from __future__ import annotations

from typing import Any

from ccasim.conformance import ConformancePlugin


# ---- conformance coverage (ccasim.conformance): records which test triggers each RMI/RSI
# failure condition (--conformance-out FILE) and fails a whole-suite run in which a listed
# condition has no test (--conformance-check=auto|on|off).
def pytest_addoption(parser: Any) -> None:
    ConformancePlugin.addoption(parser)


def pytest_configure(config: Any) -> None:
    config.pluginmanager.register(ConformancePlugin(config), ConformancePlugin.name)
