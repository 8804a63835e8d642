"""glibc malloc tuning for CPU forward passes: applied once, never over the user's own choice."""

from __future__ import annotations

import platform

import pytest

from forgetscope.backends import malloc

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="mallopt is glibc's")


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(malloc, "_applied", False)
    for name in malloc._USER_VARIABLES + ("FORGETSCOPE_MALLOC_TUNING",):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@glibc
def test_applied_once_on_glibc(fresh):
    assert malloc.tune_malloc() is True
    assert malloc._applied is True
    assert malloc.tune_malloc() is True  # a second call is a no-op


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_turned_off_by_the_environment(fresh, value):
    fresh.setenv("FORGETSCOPE_MALLOC_TUNING", value)
    assert malloc.tune_malloc() is False
    assert malloc._applied is False


def test_the_users_own_malloc_settings_win(fresh):
    fresh.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert malloc.tune_malloc() is False
    assert malloc._applied is False


def test_not_on_other_c_libraries(fresh):
    fresh.setattr(malloc.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert malloc.tune_malloc() is False
