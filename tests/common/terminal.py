"""Running a command-line tool as a user at a terminal does, for the tests of Ctrl-C and
progress output (tests/compiler/axcompile_cli.py, tests/runtime/engine/axrun_cli.py,
tests/python/test_compile.py): stderr on a pseudo-terminal (the tools draw progress only there),
SIGINT at its default action, and a signal sent once the terminal shows a given text."""
import collections
import os
import pty
import select
import signal
import subprocess
import time

TerminalRun = collections.namedtuple('TerminalRun', 'status terminal stdout took')


def default_sigint():
    """preexec_fn: the child gets SIGINT's default action, as a terminal's foreground job has; one
    started by a harness that ignores SIGINT (a background job of a shell script) would inherit
    "ignored", and the tools rightly leave an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_on_terminal_then_signal(command, sig, wait_for=b'', wait_at_most=30.0):
    """Runs `command` with stderr on a pseudo-terminal and stdout captured; once `wait_for`
    shows on the terminal (or `wait_at_most` seconds have passed, or the command has ended)
    sends `sig` (0: none) to its process group. Returns TerminalRun(exit status, terminal text,
    stdout text, seconds from the signal to the exit)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, text=True,
                               start_new_session=True, preexec_fn=default_sigint)
    os.close(slave)
    seen = b''

    def read_terminal(timeout):
        nonlocal seen
        if not select.select([master], [], [], timeout)[0]:
            return False
        try:
            seen += os.read(master, 4096)
        except OSError:  # the child closed the terminal
            return False
        return True

    deadline = time.monotonic() + wait_at_most
    while time.monotonic() < deadline and not (wait_for and wait_for in seen) and \
            process.poll() is None:
        read_terminal(0.02)
    if sig and process.poll() is None:
        os.killpg(process.pid, sig)
    sent = time.monotonic()
    stdout, _ = process.communicate(timeout=60)
    took = time.monotonic() - sent
    while read_terminal(0.1):
        pass
    os.close(master)
    return TerminalRun(process.returncode, seen.decode(errors='replace'), stdout, took)
