"""Pickle-based model files in the repository are scanned before anything loads them.

A digest proves that a file is the one reviewed, not that loading it is safe: a pickle runs
whatever its imports and calls say when it loads. Every pickle-based file of a spec's
repository artifact (the file, or each such file in the folder) is scanned with picklescan
(its list of imports that run code: os, subprocess, builtins.eval, ...): a dangerous import is
MG241, a file that cannot be read to its end as a pickle is MG242. Nothing is ever loaded.

joblib writes numpy array data raw into the pickle stream, after each NumpyArrayWrapper; no
pickle scanner reads past it. The stream is first walked here, with the small stack machine
below, and the array data cut out where joblib itself would read it, so that the scanner
sees every opcode joblib runs. Anything the walk cannot follow exactly (an array wrapper made
any other way, a dtype it cannot size, an opcode it does not know) makes the file one that
cannot be scanned: an attacker's way around the walk is a finding, never a pass.

Verdicts are cached by the file's sha256 and the scanner's version: the same bytes get the
same verdict, and `validate` in a pre-commit hook does not import the scanner for a model
that has not changed.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import pickletools
import re
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .. import cache
from ..diagnostics import Diagnostic
from .load import Document

UNSAFE = "MG241"
UNSCANNABLE = "MG242"
JOBLIB_SUFFIXES = (".joblib",)
PICKLE_SUFFIXES = (".pkl", ".pickle")
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SCANNED_SUFFIXES = (*JOBLIB_SUFFIXES, *PICKLE_SUFFIXES, *TORCH_SUFFIXES)
WALK_VERSION = "1"  # part of the cache key: a change to the walk below rescans every file
CHUNK = 1024 * 1024
MAX_UNPACKED = 1024 * CHUNK  # a compressed joblib file may unpack to at most 1 GiB here
_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_TYPE_CODE = re.compile(r"[<>|=]?(?P<kind>[biufcmMV])(?P<size>\d+)")  # numpy dtype strings
_COMPRESSED = (  # joblib's compressors, by the magic bytes it detects them by (compressor.py)
    (b"ZF", "zlib-compat"),
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\x5d\x00", "lzma"),
    (b"\xfd\x37\x7a\x58\x5a", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
)


@dataclass(frozen=True)
class Verdict:
    """What the scan of one file found: the imports that run code, or why it could not be
    read to its end. Neither: the file is clean."""

    dangerous: tuple[str, ...] = ()
    unreadable: str = ""

    def to_json(self) -> bytes:
        return json.dumps({"dangerous": self.dangerous, "unreadable": self.unreadable}).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> Verdict | None:
        try:
            data = json.loads(payload)
            return cls(tuple(map(str, data["dangerous"])), str(data["unreadable"]))
        except (ValueError, KeyError, TypeError):
            return None


class Unfollowable(Exception):
    """The stream holds something the walk cannot follow exactly as its loader would."""


def check(document: Document, root: Path) -> list[Diagnostic]:
    """MG241 and MG242 for the pickle-based files of the spec's repository artifact. Call it
    once artifacts.check found nothing: a changed or unhashable artifact is not scanned."""
    artifact = document.data["spec"]["model"].get("artifact")
    if not artifact or "://" in artifact:
        return []
    path = root / artifact
    found = []
    for file in pickle_files(path):
        shown = artifact if file == path else f"{artifact.rstrip('/')}/{file.relative_to(path)}"
        verdict = scan_file(file)
        if verdict.dangerous:
            found.append(
                document.finding(
                    ["spec", "model", "artifact"],
                    UNSAFE,
                    f"{shown} runs code when it loads: it imports " + ", ".join(verdict.dangerous),
                    "do not deploy it: find out where the file came from; re-export the model "
                    "as safetensors or ONNX, or from a trusted training run",
                )
            )
        elif verdict.unreadable:
            found.append(
                document.finding(
                    ["spec", "model", "artifact"],
                    UNSCANNABLE,
                    f"{shown} cannot be scanned: {verdict.unreadable}",
                    "save the model again with pickle, joblib (uncompressed, or zlib, gzip, bz2 "
                    "or xz) or torch.save, or as safetensors or ONNX",
                )
            )
    return found


def is_pickle_based(name: str) -> bool:
    return name.lower().endswith(SCANNED_SUFFIXES)


def pickle_files(path: Path) -> list[Path]:
    """The artifact itself when it is a pickle-based file; a folder's pickle-based files. The
    artifact may be a link inside the repository (artifacts.check refuses one out of it, and
    links inside a folder): what it names is what the server loads."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if stat.S_ISREG(mode):
        return [path] if is_pickle_based(path.name) else []
    if not stat.S_ISDIR(mode):
        return []
    found = []
    for directory, folders, files in os.walk(path):
        folders.sort()
        found += [Path(directory, name) for name in sorted(files) if is_pickle_based(name)]
    return found


def scan_file(path: Path) -> Verdict:
    """The verdict on one file, from the cache when these bytes were scanned before."""
    try:
        digest = _sha256(path)
    except OSError as exc:
        return Verdict(unreadable=f"it cannot be read ({exc.strerror})")
    key = f"{_scanner_version()}|{WALK_VERSION}|{path.suffix.lower()}|{digest}"
    cached = cache.load("pickle-scan", key)
    verdict = Verdict.from_json(cached) if cached is not None else None
    if verdict is None:
        verdict = _scan(path)
        cache.store("pickle-scan", key, verdict.to_json())
    return verdict


def _scan(path: Path) -> Verdict:
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as stream:
            if suffix in TORCH_SUFFIXES:
                return _judge(_scanner().scan_bytes(stream, str(path), suffix))
            streams = opcode_streams(stream, joblib=suffix in JOBLIB_SUFFIXES)
    except Unfollowable as exc:
        return Verdict(unreadable=str(exc))
    except OSError as exc:
        return Verdict(unreadable=f"it cannot be read ({exc.strerror})")
    scanner = _scanner()
    result = scanner.ScanResult([])
    for index, opcodes in enumerate(streams):
        result.merge(scanner.scan_pickle_bytes(io.BytesIO(opcodes), f"{path}#{index}"))
    return _judge(result)


def _judge(result: Any) -> Verdict:
    dangerous = sorted(
        f"{found.module}.{found.name}"
        for found in result.globals
        if found.safety.value == "dangerous"
    )
    if dangerous:
        return Verdict(dangerous=tuple(dangerous))
    if result.scan_err:
        return Verdict(unreadable="it is not a pickle the scanner can read to its end")
    return Verdict()


def _scanner() -> Any:
    import logging

    from picklescan import scanner

    # picklescan logs what it finds; modelgate reports it, through its own output
    logging.getLogger("picklescan").addHandler(logging.NullHandler())
    logging.getLogger("picklescan").propagate = False
    return scanner


def _scanner_version() -> str:
    return cache.installed_version("picklescan")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- following a pickle stream as pickle and joblib load it --------------------------------


def opcode_streams(stream: IO[bytes], joblib: bool) -> list[bytes]:
    """The pickle opcodes the loader runs, without the data it reads raw: one stream for the
    file's pickle and one for each pickle nested in it (a joblib array of Python objects).
    FRAME opcodes are left out (their lengths would no longer hold). `joblib`: the file is
    loaded by joblib.load, which reads each NumpyArrayWrapper's array data raw from the
    stream; else by pickle.load, for which an array wrapper is not what it seems."""
    stream = _unpacked(stream) if joblib else stream
    found = []
    pending = [(stream.tell(), JOBLIB if joblib else PICKLE)]
    while pending:
        start, how = pending.pop(0)
        stream.seek(start)
        walk = _Walk(stream, how)
        found.append(walk.run())
        pending.extend((offset, NESTED) for offset in walk.nested)
    return found


def _unpacked(stream: IO[bytes]) -> IO[bytes]:
    """A compressed joblib file's pickle stream (joblib picks the decompressor by the magic
    bytes); the stream itself when it is not compressed."""
    head = stream.read(8)
    stream.seek(0)
    kind = next((name for magic, name in _COMPRESSED if head.startswith(magic)), None)
    if kind is None:
        return stream
    if kind == "lz4":
        raise Unfollowable("it is compressed with lz4, which the scan cannot unpack")
    try:
        with _decompressor(kind, stream) as reader:
            return _read_capped(reader)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise Unfollowable(f"its {kind} compression is damaged ({exc})") from exc


def _decompressor(kind: str, stream: IO[bytes]) -> IO[bytes]:
    if kind == "zlib-compat":  # joblib < 0.10: 'ZF', a length in 16 bytes, then zlib data
        stream.seek(2 + 16)
        return _ZlibReader(stream)
    if kind == "zlib":
        return _ZlibReader(stream)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream)
    if kind == "bz2":
        return bz2.BZ2File(stream)
    return lzma.LZMAFile(stream)  # xz, or the older .lzma format joblib also writes


def _read_capped(reader: IO[bytes]) -> IO[bytes]:
    data = io.BytesIO()
    while chunk := reader.read(CHUNK):
        data.write(chunk)
        if data.tell() > MAX_UNPACKED:
            raise Unfollowable(f"it unpacks to more than {MAX_UNPACKED // CHUNK} MiB")
    data.seek(0)
    return data


class _ZlibReader(io.RawIOBase):
    """A readable stream of zlib data, unpacked as it is read."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.unpack, self.pending = source, zlib.decompressobj(), b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self.pending and not self.unpack.eof:
            chunk = self.source.read(CHUNK)
            self.pending += self.unpack.decompress(chunk) if chunk else self.unpack.flush()
            if not chunk:
                break
        taken, self.pending = self.pending[:size], self.pending[size:]
        return taken


@dataclass(frozen=True)
class _Global:
    module: str
    name: str

    @property
    def wrapper(self) -> bool:
        return (self.module, self.name) == _WRAPPER

    @property
    def of_joblib(self) -> bool:
        return "joblib" in self.module.split(".")[0] or "numpy_pickle" in self.name


class _Object:
    """Something the loader builds: what it was built from, and the state BUILD gave it."""

    def __init__(self, built_from: Any, arguments: Any) -> None:
        self.built_from, self.arguments, self.state = built_from, arguments, None


class _Wrapper(_Object):
    """A joblib NumpyArrayWrapper: a BUILD of it makes joblib read an array raw."""


JOBLIB, PICKLE, NESTED = "joblib", "pickle", "nested"  # how a stream is loaded (see _Walk)
_LARGE = 64 * 1024  # bytes literals longer than this reach the scanner as empty ones
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_PUSH_ARGUMENT = {  # opcodes that push their argument as it is
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "FLOAT",
    "BINFLOAT", *_BYTES,
}  # fmt: skip
_EMPTY_BYTES = b"C\x00"  # SHORT_BINBYTES of length 0


class _Walk:
    """One pickle, followed opcode by opcode with a symbolic stack: literals are kept as they
    are, everything the loader would build is an _Object. `how` it is loaded: by joblib.load
    (JOBLIB: a BUILD of an array wrapper reads the array raw), by pickle.load as a model file
    (PICKLE: joblib array data would be read as opcodes, so it is refused), or by pickle.load
    inside a joblib file (NESTED: an array of Python objects). The result is the opcodes'
    bytes without FRAMEs and without the raw array data."""

    def __init__(self, source: IO[bytes], how: str) -> None:
        self.source, self.how = source, how
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.out = bytearray()
        self.nested: list[int] = []  # where the nested pickles start in the source

    def run(self) -> bytes:
        try:
            for opcode, argument, position in pickletools.genops(self.source):
                self._copy(opcode.name, argument, position or 0)
                if opcode.name == "STOP":
                    return bytes(self.out)
                self._apply(opcode.name, argument)
        except Unfollowable:
            raise
        except (ValueError, IndexError, KeyError, TypeError, EOFError) as exc:
            raise Unfollowable(f"it is not a pickle that can be read to its end ({exc})") from exc
        raise Unfollowable("its pickle stream ends without a STOP")

    def _copy(self, name: str, argument: Any, position: int) -> None:
        if name == "FRAME":  # its length would no longer hold once arrays are cut out
            return
        if name in _BYTES and len(argument) > _LARGE:
            self.out += _EMPTY_BYTES  # data, never a name: the scanner needs none of it
            return
        end = self.source.tell()
        self.source.seek(position)
        self.out += self.source.read(end - position)

    def _apply(self, name: str, argument: Any) -> None:
        if name in _PUSH_ARGUMENT:
            large = name in _BYTES and len(argument) > _LARGE
            self.stack.append(_Object(name, ()) if large else argument)
        elif name in _CONSTANTS:
            self.stack.append(_CONSTANTS[name])
        elif name in _EMPTY:
            self.stack.append(_EMPTY[name]())
        elif name in _HANDLERS:
            _HANDLERS[name](self, argument)
        elif name in ("EXT1", "EXT2", "EXT4"):
            raise Unfollowable("it loads objects from the copyreg extension registry")
        else:  # NEXT_BUFFER, READONLY_BUFFER and whatever a later protocol adds
            raise Unfollowable(f"it uses the pickle opcode {name}, which the scan does not follow")

    # --- one method per kind of opcode, each given the opcode's argument -----------------

    def _nothing(self, _: Any) -> None:
        """PROTO, FRAME."""

    def _mark(self, _: Any) -> None:
        self.marks.append(len(self.stack))

    def _pop(self, _: Any) -> None:
        self._taken(self.stack.pop())

    def _pop_mark(self, _: Any) -> None:
        self._taken(self._since_mark())

    def _dup(self, _: Any) -> None:
        self.stack.append(self.stack[-1])

    def _memoize(self, _: Any) -> None:
        self.memo[len(self.memo)] = self.stack[-1]

    def _put(self, index: Any) -> None:
        self.memo[int(index)] = self.stack[-1]

    def _get(self, index: Any) -> None:
        self.stack.append(self.memo[int(index)])

    def _small_tuple(self, size: int) -> None:
        items = tuple(self.stack[-size:]) if size else ()
        if size:
            del self.stack[-size:]
        self.stack.append(self._taken(items))

    def _tuple(self, _: Any) -> None:
        self.stack.append(tuple(self._taken(self._since_mark())))

    def _list(self, _: Any) -> None:
        self.stack.append(list(self._taken(self._since_mark())))

    def _dict(self, _: Any) -> None:
        self.stack.append(_filled({}, self._taken(self._since_mark())))

    def _append(self, _: Any) -> None:
        self._extend([self.stack.pop()])

    def _appends(self, _: Any) -> None:
        self._extend(self._since_mark())

    def _extend(self, items: list[Any]) -> None:
        self._taken(items)
        if isinstance(self.stack[-1], list):
            self.stack[-1].extend(items)

    def _setitem(self, _: Any) -> None:
        items = self.stack[-2:]
        del self.stack[-2:]
        self._update(items)

    def _setitems(self, _: Any) -> None:
        self._update(self._since_mark())

    def _update(self, items: list[Any]) -> None:
        self._taken(items)
        if isinstance(self.stack[-1], dict):
            _filled(self.stack[-1], items)

    def _global_opcode(self, argument: Any) -> None:
        module, _, attribute = str(argument).partition(" ")
        self.stack.append(self._global(module, attribute))

    def _stack_global(self, _: Any) -> None:
        attribute, module = self.stack.pop(), self.stack.pop()
        if not (isinstance(module, str) and isinstance(attribute, str)):
            raise Unfollowable("it imports a name it computes while loading")
        self.stack.append(self._global(module, attribute))

    def _inst(self, argument: Any) -> None:
        module, _, attribute = str(argument).partition(" ")
        found = self._global(module, attribute)
        self.stack.append(self._build(found, tuple(self._since_mark()), "INST"))

    def _obj(self, _: Any) -> None:
        items = self._since_mark()
        if not items:
            raise Unfollowable("an OBJ opcode has nothing to build")
        self.stack.append(self._build(items[0], tuple(items[1:]), "OBJ"))

    def _reduce(self, _: Any) -> None:
        arguments = self.stack.pop()
        self.stack.append(self._build(self.stack.pop(), arguments, "REDUCE"))

    def _newobj(self, _: Any) -> None:
        arguments = self.stack.pop()
        self.stack.append(self._build(self.stack.pop(), arguments, "NEWOBJ"))

    def _newobj_ex(self, _: Any) -> None:
        keywords, arguments = self.stack.pop(), self.stack.pop()
        self.stack.append(self._build(self.stack.pop(), (arguments, keywords), "NEWOBJ_EX"))

    def _build_opcode(self, _: Any) -> None:
        self._built(self._taken(self.stack.pop()))

    def _persid(self, _: Any) -> None:
        self.stack.append(_Object("PERSID", ()))

    def _binpersid(self, _: Any) -> None:
        self._taken(self.stack.pop())
        self.stack.append(_Object("BINPERSID", ()))

    def _since_mark(self) -> list[Any]:
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def _global(self, module: str, attribute: str) -> _Global:
        found = _Global(module, attribute)
        if found.of_joblib and not found.wrapper:
            raise Unfollowable(f"it imports {module}.{attribute}, which joblib loads its own way")
        return found

    def _build(self, built_from: Any, arguments: Any, how: str) -> _Object:
        if isinstance(built_from, _Global) and built_from.wrapper:
            if how != "NEWOBJ" or arguments != ():
                raise Unfollowable("it makes a joblib array wrapper in an unusual way")
            return _Wrapper(built_from, arguments)
        self._taken(arguments)
        return _Object(built_from, arguments)

    def _built(self, state: Any) -> None:
        """BUILD: the object on top of the stack gets `state`. joblib then replaces an array
        wrapper with the array it reads (NumpyUnpickler.load_build)."""
        target = self.stack[-1]
        if not isinstance(target, _Wrapper) or self.how == NESTED:
            if isinstance(target, _Object):
                target.state = state
            return
        if self.how == PICKLE:
            raise Unfollowable(
                "it holds joblib array data, which pickle.load reads as opcodes: save it as "
                "a .joblib file"
            )
        self._array(state)
        self.stack[-1] = _Object("array", ())

    def _taken(self, value: Any) -> Any:
        """`value` used as data: joblib's array wrapper class may only be called, bare."""
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, _Global) and item.wrapper:
                raise Unfollowable("it passes joblib's array wrapper class around")
            if isinstance(item, (list, tuple)):
                pending.extend(item)
            elif isinstance(item, dict):
                pending.extend(item.values())
        return value

    def _array(self, state: Any) -> None:
        """Skip what joblib's NumpyArrayWrapper.read_array reads after the wrapper's BUILD:
        a nested pickle for an array of Python objects; else, when the state names an
        alignment, one byte giving the padding's length and the padding, then count *
        itemsize bytes of data."""
        if not isinstance(state, dict) or not isinstance(state.get("dtype"), _Object):
            raise Unfollowable("a joblib array wrapper has a state the scan cannot read")
        count = _count(state.get("shape"))
        itemsize, objects = _itemsize(state["dtype"])
        if objects:
            self.nested.append(self.source.tell())
            _skip_pickle(self.source)
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.source.read(1)
            if len(padding) != 1:
                raise Unfollowable("a joblib array ends early")
            self._skip(padding[0])
        self._skip(count * itemsize)

    def _skip(self, size: int) -> None:
        here = self.source.tell()
        end = self.source.seek(0, io.SEEK_END)
        if here + size > end:
            raise Unfollowable("a joblib array ends early")
        self.source.seek(here + size)


_EMPTY: dict[str, Callable[[], Any]] = {
    "EMPTY_LIST": list,
    "EMPTY_DICT": dict,
    "EMPTY_TUPLE": tuple,
    "EMPTY_SET": lambda: _Object("EMPTY_SET", ()),
}
_HANDLERS: dict[str, Callable[[_Walk, Any], None]] = {
    "PROTO": _Walk._nothing,
    "FRAME": _Walk._nothing,
    "MARK": _Walk._mark,
    "POP": _Walk._pop,
    "POP_MARK": _Walk._pop_mark,
    "DUP": _Walk._dup,
    "MEMOIZE": _Walk._memoize,
    "PUT": _Walk._put,
    "BINPUT": _Walk._put,
    "LONG_BINPUT": _Walk._put,
    "GET": _Walk._get,
    "BINGET": _Walk._get,
    "LONG_BINGET": _Walk._get,
    "TUPLE1": lambda walk, _: walk._small_tuple(1),
    "TUPLE2": lambda walk, _: walk._small_tuple(2),
    "TUPLE3": lambda walk, _: walk._small_tuple(3),
    "TUPLE": _Walk._tuple,
    "LIST": _Walk._list,
    "FROZENSET": _Walk._list,
    "DICT": _Walk._dict,
    "APPEND": _Walk._append,
    "APPENDS": _Walk._appends,
    "ADDITEMS": _Walk._appends,
    "SETITEM": _Walk._setitem,
    "SETITEMS": _Walk._setitems,
    "GLOBAL": _Walk._global_opcode,
    "STACK_GLOBAL": _Walk._stack_global,
    "INST": _Walk._inst,
    "OBJ": _Walk._obj,
    "REDUCE": _Walk._reduce,
    "NEWOBJ": _Walk._newobj,
    "NEWOBJ_EX": _Walk._newobj_ex,
    "BUILD": _Walk._build_opcode,
    "PERSID": _Walk._persid,
    "BINPERSID": _Walk._binpersid,
}


def _filled(target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
    """`target` with the key, value pairs of `items`; keys that are not plain literals are
    left out (nothing here reads them)."""
    for key, value in zip(items[::2], items[1::2], strict=False):
        if isinstance(key, (str, int, bytes)):
            target[key] = value
    return target


def _count(shape: Any) -> int:
    if not isinstance(shape, tuple) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise Unfollowable("a joblib array has a shape the scan cannot read")
    count = 1
    for size in shape:
        count *= size
    return count


_DTYPES = {("numpy", "dtype"), ("numpy.core.multiarray", "dtype")}
# numpy's fixed-size types (bool, ints, floats, complex, timedeltas and datetimes with a unit)
# and its byte and unicode strings, whose size the dtype's state gives
_TYPE = re.compile(r"[<>|=]?(?P<kind>[biufcmMSU])(?P<size>\d+)(\[\w+\])?")
_CHARACTER_BYTES = {"S": 1, "U": 4}


def _itemsize(dtype: _Object) -> tuple[int, bool]:
    """(bytes per element, holds Python objects) of a numpy dtype as pickled:
    numpy.dtype(TYPE, False, True), then BUILD with (version, byteorder, subarray, names,
    fields, elsize, alignment, flags). Plain fixed-size, string and object dtypes are sized;
    structured, subarray and void ones are not followed, nor a state whose element size
    disagrees with the type."""
    built_from, arguments = dtype.built_from, dtype.arguments
    if not (
        isinstance(built_from, _Global)
        and (built_from.module, built_from.name) in _DTYPES
        and isinstance(arguments, tuple)
        and arguments
        and isinstance(arguments[0], str)
    ):
        raise Unfollowable("a joblib array has a dtype the scan cannot read")
    code = arguments[0]
    if code in ("O", "O4", "O8"):
        return 0, True
    found = _TYPE.fullmatch(code)
    if found is None:
        raise Unfollowable(f"a joblib array has dtype {code!r}, which the scan cannot size")
    size = int(found["size"]) * _CHARACTER_BYTES.get(found["kind"], 1)
    _check_dtype_state(dtype.state, size, flexible=found["kind"] in _CHARACTER_BYTES)
    return size, False


def _check_dtype_state(state: Any, size: int, flexible: bool) -> None:
    """numpy takes a string dtype's size from the state: it must be the one the type names."""
    if state is None and not flexible:
        return
    if not (isinstance(state, tuple) and len(state) >= 6 and state[2:5] == (None, None, None)):
        raise Unfollowable("a joblib array has a structured or subarray dtype")
    allowed = (size,) if flexible else (-1, size)
    if state[5] not in allowed:
        raise Unfollowable("a joblib array's dtype states another element size than its type")


def _skip_pickle(source: IO[bytes]) -> None:
    for opcode, _, _ in pickletools.genops(source):
        if opcode.name == "STOP":
            return
    raise Unfollowable("a nested pickle ends without a STOP")
