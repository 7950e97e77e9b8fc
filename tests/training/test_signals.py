"""GracefulStop: the first signal only sets a flag; duplicates are ignored; handlers are restored."""

import os
import signal

from ivid.training.signals import GracefulStop


def test_first_signal_sets_the_flag_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop(duplicate_window_s=60.0) as stop:
        assert stop.requested is None
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # within the window: the same stop request, no exit
        assert stop.requested == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_second_signal_exits_at_once(tmp_path):
    import subprocess
    import sys

    code = ("import os, signal, time\n"
            "from ivid.training.signals import GracefulStop\n"
            "with GracefulStop(duplicate_window_s=0.0):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(0.2)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(5)\n"
            "print('not reached')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 128 + signal.SIGTERM
    assert "not reached" not in result.stdout and "second signal SIGTERM" in result.stderr
