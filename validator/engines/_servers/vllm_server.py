"""vLLM's OpenAI-compatible server (its CPU build) on one model folder, on loopback.

    python vllm_server.py SETTINGS.json --port P [--host ADDRESS]

SETTINGS.json is what modelgate renders into rendered/local/NAME/ (templates/vllm/): the
arguments the cluster's Deployment gives vLLM, whose "--model" is a folder relative to the
settings file. This process becomes vLLM's server (the same process id, for the keeper), bound
to 127.0.0.1 unless --host says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

LOOPBACK = "127.0.0.1"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def command(settings_file: Path, port: int, host: str) -> list[str]:
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    args = list(settings["args"])
    at = args.index("--model") + 1
    args[at] = str((settings_file.parent / args[at]).resolve())
    return [sys.executable, "-m", SERVER_MODULE, *args, "--host", host, "--port", str(port)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("settings", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=LOOPBACK)
    options = parser.parse_args(argv)
    run = command(options.settings, options.port, options.host)
    os.execv(run[0], run)
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
