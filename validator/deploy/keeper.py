"""Ties an engine process to the deploy that started it, SIGKILL included.

The local target starts `python -m validator.deploy.keeper ENGINE ARGS...` instead of the
engine itself, with a pipe from modelgate on the keeper's stdin. The keeper starts the engine
as its child, in its own process group, and then:

- when modelgate writes `keep`, it stays with the engine (a kept deployment) and exits when
  the engine exits, with its exit code;
- when the pipe closes first, for whatever reason (the deploy finished or failed, or
  modelgate was killed and the kernel closed its end), it stops the engine and exits;
- when the engine exits first, it exits with the engine's code, so the deploy sees a crash
  exactly as if it had started the engine itself.

A parent-death signal would not do: Linux sends it when the *thread* that started the child
exits, and deploys run in worker threads; and a kept engine must outlive modelgate.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

KEEP = "keep"
GRACE_S = 5.0


def main(command: list[str]) -> int:
    engine = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    for forwarded in (signal.SIGTERM, signal.SIGINT):
        signal.signal(forwarded, lambda signum, frame: engine.send_signal(signum))
    kept = threading.Event()
    threading.Thread(target=_listen, args=(engine, kept), daemon=True).start()
    return engine.wait()


def _listen(engine: subprocess.Popen, kept: threading.Event) -> None:
    """Read the pipe from modelgate until `keep` or its end; without `keep`, stop the engine."""
    for line in sys.stdin:
        if line.strip() == KEEP:
            kept.set()
            return
    if not kept.is_set():
        engine.terminate()
        try:
            engine.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            engine.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
