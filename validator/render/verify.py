"""The init container that checks a downloaded artifact before the model server starts.

Engines whose pods fetch their model from a store (Triton's and KServe's storage initializer,
vLLM and TGI for artifacts that are not on the Hugging Face Hub) run it after the download,
with the digest the spec names: `sha256` for a file, `treeSha256` for a folder (the tree
digest of docs/artifacts.md). On a mismatch it exits 1, the pod never reaches its server
container, and the pod's events say which artifact differs. Its image is
values.artifactVerifier (a Python image), pinned by digest under `images` like the engines'.

The script runs with `python3 -I -c`: no site packages, no environment, no writes; the
digest and the path are arguments, never part of the code. It fails closed: a folder it
cannot list or a file it cannot read stops the pod as a mismatch does (os.walk alone would
leave an unlistable folder out of the digest without a word).
"""

from __future__ import annotations

CONTAINER_NAME = "verify-model"
FIELDS = ("sha256", "treeSha256")

SCRIPT = """\
import hashlib, os, stat, sys
field, expected, path = sys.argv[1:4]
def file_sha256(name):
    digest = hashlib.sha256()
    with open(name, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
def unreadable(exc):
    sys.exit("artifact check: %s cannot be read (%s)" % (exc.filename, exc.strerror))
def tree_sha256(folder):
    lines = []
    for directory, folders, files in os.walk(folder, onerror=unreadable):
        for name in folders + files:
            mode = os.lstat(os.path.join(directory, name)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                sys.exit("artifact check: %s is not a regular file or folder" % name)
        for name in files:
            full = os.path.join(directory, name)
            relative = os.fsencode(os.path.relpath(full, folder).replace(os.sep, "/"))
            lines.append((relative, b"%s  %s\\n" % (file_sha256(full).encode(), relative)))
    if not lines:
        sys.exit("artifact check: %s holds no files" % folder)
    return hashlib.sha256(b"".join(line for _, line in sorted(lines))).hexdigest()
try:
    actual = file_sha256(path) if field == "sha256" else tree_sha256(path)
except OSError as exc:
    unreadable(exc)
if actual != expected:
    sys.exit("artifact check: %s has %s %s; the spec names %s" % (path, field, actual, expected))
print("artifact check: %s has the %s the spec names" % (path, field))
"""


def command() -> list[str]:
    """The container's command; its args are [field, expected digest, path]."""
    return ["python3", "-I", "-c", SCRIPT]
