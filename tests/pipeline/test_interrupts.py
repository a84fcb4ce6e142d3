"""Ctrl-C with torchrun-like children: `call_in_own_group` keeps the terminal's SIGINT from the
launcher and its ranks (each in a session of its own, as torch elastic starts them), kills them
all, and re-raises it, so the command prints one line and no child prints a traceback."""

import os
import signal
import subprocess
import sys
import textwrap
import time

# A launcher like torchrun's agent: a rank in a new session, and SIGINT forwarded to it (the rank
# then dies with a KeyboardInterrupt traceback).
AGENT = textwrap.dedent("""
    import signal, subprocess, sys
    rank = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    open(sys.argv[1], "w").write(str(rank.pid))
    signal.signal(signal.SIGINT, lambda *_: rank.send_signal(signal.SIGINT))
    sys.exit(rank.wait())
""")
COMMAND = textwrap.dedent("""
    import sys
    from pipeline.interrupts import call_in_own_group
    try:
        sys.exit(call_in_own_group([sys.executable, "-c", sys.argv[1], sys.argv[2]]))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
""")


def test_ctrl_c_kills_the_launcher_and_its_ranks_quietly(tmp_path):
    pid_file = tmp_path / "rank.pid"
    proc = subprocess.Popen([sys.executable, "-c", COMMAND, AGENT, str(pid_file)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    rank = int(pid_file.read_text())
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the group of the command only
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "interrupted\n", err
    time.sleep(0.2)
    state = subprocess.run(["ps", "-p", str(rank), "-o", "stat="], capture_output=True, text=True).stdout
    assert state.strip()[:1] in ("", "Z")  # killed (a zombie until whoever adopted it reaps it)
