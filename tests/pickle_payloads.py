"""Pickles that run code when they load, written opcode by opcode: one for each way the
standard library offers, each touching a marker file were it ever loaded (nothing here
loads one). Protocol 0 keeps them readable; `at_protocol_4` writes the same call with the
opcodes of protocol 4 (STACK_GLOBAL, dotted names) that joblib and torch write."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path


def _text(value: str) -> bytes:
    return b"V" + value.encode("raw_unicode_escape") + b"\n"


def call(module: str, name: str, *arguments: str) -> bytes:
    """A GLOBAL, a tuple of text arguments, REDUCE: module.name(*arguments)."""
    head = b"c%s\n%s\n(" % (module.encode(), name.encode())
    return head + b"".join(map(_text, arguments)) + b"tR"


def shell(marker: Path) -> str:
    return f"touch {marker}"


def routes(marker: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (a pickle's opcodes up to, without, its STOP; the name it must be refused
    for). Every route of the standard library that runs a command or code."""
    command = shell(marker)
    python = f"open({str(marker)!r}, 'w')"
    os_module = b"cbuiltins\n__import__\n(Vos\ntR"
    return {
        "os.system": (call("os", "system", command), "os.system"),
        "posix.system": (call("posix", "system", command), "posix.system"),
        "posixpath.system": (call("posixpath", "system", command), "posixpath.system"),
        "nt.system": (call("nt", "system", command), "nt.system"),
        "subprocess.Popen": (
            b"csubprocess\nPopen\n((V/bin/sh\nV-c\n" + _text(command) + b"ltR",
            "subprocess.Popen",
        ),
        "subprocess.check_output": (
            b"csubprocess\ncheck_output\n((V/bin/sh\nV-c\n" + _text(command) + b"ltR",
            "subprocess.check_output",
        ),
        "pty.spawn": (call("pty", "spawn", "/bin/sh"), "pty.spawn"),
        "runpy.run_path": (call("runpy", "run_path", str(marker)), "runpy.run_path"),
        "importlib.import_module": (
            call("importlib", "import_module", "antigravity"),
            "importlib.import_module",
        ),
        "pickle.loads": (
            b"cpickle\nloads\n(C" + bytes([len(command)]) + command.encode() + b"tR",
            "pickle.loads",
        ),
        "shutil.rmtree": (call("shutil", "rmtree", str(marker.parent)), "shutil.rmtree"),
        "socket.create_connection": (
            b"csocket\ncreate_connection\n((V127.0.0.1\nI9\nttR",
            "socket.create_connection",
        ),
        "webbrowser.open": (call("webbrowser", "open", "https://example.com"), "webbrowser.open"),
        "ctypes.CDLL": (call("ctypes", "CDLL", "libc.so.6"), "ctypes.CDLL"),
        "operator.attrgetter": (
            b"coperator\nattrgetter\n(Vsystem\ntR(" + os_module + b"tR(" + _text(command) + b"tR",
            "operator.attrgetter",
        ),
        "operator.methodcaller": (
            b"coperator\nmethodcaller\n(Vsystem\n" + _text(command) + b"tR(" + os_module + b"tR",
            "operator.methodcaller",
        ),
        "builtins.eval": (call("builtins", "eval", python), "builtins.eval"),
        "builtins.exec": (call("builtins", "exec", python), "builtins.exec"),
        "builtins.getattr": (
            b"cbuiltins\ngetattr\n(" + os_module + b"Vsystem\ntR(" + _text(command) + b"tR",
            "builtins.getattr",
        ),
        "builtins.__import__": (
            b"cbuiltins\n__import__\n(Vos\ntR0" + call("builtins", "print", "imported"),
            "builtins.__import__",
        ),
        "builtins.vars": (
            b"cbuiltins\nvars\n(" + os_module + b"tR0" + call("builtins", "print", "x"),
            "builtins.vars",
        ),
        "multiprocessing.util.spawnv_passfds": (
            b"cmultiprocessing.util\nspawnv_passfds\n(V/bin/sh\n(V/bin/sh\nV-c\n"
            + _text(command)
            + b"l(ltR",
            "multiprocessing.util.spawnv_passfds",
        ),
        "code.InteractiveInterpreter": (
            b"ccode\nInteractiveInterpreter\n)R0" + call("builtins", "print", "x"),
            "code.InteractiveInterpreter",
        ),
        "code.InteractiveInterpreter.runsource": (
            at_protocol_4("code", "InteractiveInterpreter.runsource", python)[2:-1],
            "code.InteractiveInterpreter.runsource",
        ),
    }


def at_protocol_4(module: str, name: str, *arguments: str) -> bytes:
    """module.name(*arguments) as protocol 4 writes it: SHORT_BINUNICODE, STACK_GLOBAL."""
    out = b"\x80\x04"
    for text in (module, name):
        data = text.encode()
        out += b"\x8c" + bytes([len(data)]) + data
    out += b"\x93("
    for text in arguments:
        data = text.encode()
        out += b"X" + len(data).to_bytes(4, "little") + data
    return out + b"tR."


def pickle_of(opcodes: bytes) -> bytes:
    """A whole pickle: the opcodes, then STOP."""
    return opcodes + b"."


def inserted(model: bytes, opcodes: bytes) -> bytes:
    """`model` (a pickle, or a joblib file) with `opcodes` run just before it returns: they
    end with POP, so the loader still returns the model itself."""
    assert model.endswith(b".")
    return model[:-1] + opcodes + b"0."


def torch_archive(data_pkl: bytes, name: str = "archive") -> bytes:
    """The layout torch.save writes: NAME/data.pkl, NAME/version, NAME/data/0."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/data.pkl", data_pkl)
        archive.writestr(f"{name}/version", "3\n")
        archive.writestr(f"{name}/data/0", bytes(16))
    return buffer.getvalue()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
