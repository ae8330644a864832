"""edgeopt.parent_death: a child's parent-death signal is SIGKILL (read back with prctl(PR_GET_PDEATHSIG))."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from edgeopt.parent_death import preexec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

READ_BACK = ("import ctypes; v = ctypes.c_int(-1); ctypes.CDLL(None).prctl(2, ctypes.byref(v)); "  # PR_GET_PDEATHSIG
             "print(v.value)")


def test_die_with_parent_sets_sigkill_in_the_calling_child():
    code = "from edgeopt.parent_death import die_with_parent; die_with_parent(); " + READ_BACK
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert int(out) == signal.SIGKILL


def test_preexec_sets_it_for_a_third_party_tool_and_nothing_is_inherited_without_it():
    fn = preexec()
    assert fn is not None
    with_it = subprocess.run([sys.executable, "-c", READ_BACK], capture_output=True, text=True, check=True, timeout=60,
                             preexec_fn=fn).stdout  # noqa: PLW1509
    without = subprocess.run([sys.executable, "-c", READ_BACK], capture_output=True, text=True, check=True,
                             timeout=60).stdout
    assert (int(with_it), int(without)) == (signal.SIGKILL, 0)
