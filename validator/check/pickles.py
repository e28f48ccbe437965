"""Model files are judged by what they are, never by their names: every file of a spec's
artifact whose bytes hold a pickle (raw; in a zip such as a PyTorch archive; compressed with
gzip, zlib, bz2 or xz as joblib writes it; or behind joblib's numpy array framing) is walked
opcode by opcode, never loaded, and every name it imports (GLOBAL, STACK_GLOBAL, INST; what
OBJ, REDUCE, NEWOBJ and BUILD call comes from those) is recorded. The policy judges those
names by an allow-list (MG-SEC-160); picklescan reads the same opcodes as a second opinion,
and its "dangerous" verdict refuses the file whatever the allow-list says (MG241). A file
that holds a pickle the walk cannot follow exactly is MG242.

A loader runs opcodes until it fails: what a pickle imports before a byte no loader can read
counts as much as what a complete one imports, so the walk goes as far as a loader would and
records everything on the way. A file whose very first bytes are no pickle opcode runs
nothing and holds no pickle.

joblib writes numpy array data raw into the pickle stream, after each NumpyArrayWrapper. The
stream is walked twice then: as joblib.load reads it (the array data cut out where joblib
itself reads it, with the small stack machine below) and as pickle.load reads it (the array
data taken for opcodes, up to where that fails): the names of both count. Anything the joblib
walk cannot follow exactly (an array wrapper made any other way, a dtype it cannot size, an
opcode it does not know) makes the file one that cannot be scanned: an attacker's way around
the walk is a finding, never a pass.

What a file holds is cached by its sha256 and the walk's and the scanner's versions: the same
bytes give the same names, and `validate` in a pre-commit hook does not import the scanner
for a model that has not changed.
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
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import cache
from ..diagnostics import Diagnostic
from .load import Document

UNSAFE = "MG241"
UNSCANNABLE = "MG242"
PICKLE_FORMATS = ("sklearn", "pytorch")  # formats whose files are pickles
# file names `new` gives pickle-based models; what a file holds is judged by its bytes alone
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt")
WALK_VERSION = "3"  # part of the cache key: a change to the walk below rescans every file
CHUNK = 1024 * 1024
MAX_UNPACKED = 1024 * CHUNK  # a compressed file or zip may unpack to at most 1 GiB here
MAX_DEPTH = 4  # containers in containers (a zip in a gzip in a zip ...)
_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_COMPRESSED = (  # joblib's compressors, by the magic bytes it detects them by (compressor.py)
    (b"ZF", "zlib-compat"),
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\xfd\x37\x7a\x58\x5a", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_IMPORTS = {"GLOBAL", "STACK_GLOBAL", "INST"}
# what find_class can import: a dotted name of identifiers; anything else fails to import
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_HIGHEST_PROTOCOL = 5


@dataclass(frozen=True)
class Verdict:
    """What one file holds: whether a pickle, the names its pickles import (module.name, in
    the order first seen), those picklescan rates dangerous, or why it cannot be followed."""

    pickle: bool = False
    imports: tuple[str, ...] = ()
    dangerous: tuple[str, ...] = ()
    unreadable: str = ""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "pickle": self.pickle,
                "imports": self.imports,
                "dangerous": self.dangerous,
                "unreadable": self.unreadable,
            }
        ).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> Verdict | None:
        try:
            data = json.loads(payload)
            return cls(
                bool(data["pickle"]),
                tuple(map(str, data["imports"])),
                tuple(map(str, data["dangerous"])),
                str(data["unreadable"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Held:
    """One file of an artifact that holds a pickle: its path, the name findings show, and
    the verdict on it."""

    path: Path
    shown: str
    verdict: Verdict


class Unfollowable(Exception):
    """The stream holds something the walk cannot follow exactly as its loader would."""


class _LoaderFails(Exception):
    """A loader stops here with an error: what came before it ran, nothing after."""


def check(document: Document, root: Path, located: Path | None = None) -> list[Diagnostic]:
    """MG241 and MG242 for the files of the spec's artifact that hold pickles (`located`: where
    an artifact from elsewhere was fetched to). Call it once artifacts.check found nothing: a
    changed or unhashable artifact is not scanned. The names they import are the policy's to
    judge (MG-SEC-160)."""
    found = []
    for held in pickles_held(document, root, located):
        verdict = held.verdict
        if verdict.dangerous:
            found.append(
                document.finding(
                    ["spec", "model", "artifact"],
                    UNSAFE,
                    f"{held.shown} runs code when it loads: it imports "
                    + ", ".join(verdict.dangerous),
                    "do not deploy it: find out where the file came from; re-export the model "
                    "as safetensors or ONNX, or from a trusted training run",
                )
            )
        elif verdict.unreadable:
            found.append(
                document.finding(
                    ["spec", "model", "artifact"],
                    UNSCANNABLE,
                    f"{held.shown} cannot be scanned: {verdict.unreadable}",
                    "save the model again with pickle, joblib (uncompressed, or zlib, gzip, bz2 "
                    "or xz) or torch.save, or as safetensors or ONNX",
                )
            )
    return found


def pickles_held(document: Document, root: Path, located: Path | None = None) -> list[Held]:
    """The files of the spec's artifact (in the repository, or fetched to `located`) that hold
    a pickle, whatever their names, with the verdict on each."""
    artifact = document.data["spec"]["model"].get("artifact")
    if not artifact:
        return []
    if located is None and "://" in artifact:
        return []
    path = located or root / artifact
    try:
        files = artifact_files(path)
    except OSError as exc:  # a folder that cannot be listed hides what it holds
        reason = f"{exc.filename} cannot be listed ({exc.strerror})"
        return [Held(path, artifact, Verdict(pickle=True, unreadable=reason))]
    held = []
    for file in files:
        shown = artifact if file == path else f"{artifact.rstrip('/')}/{file.relative_to(path)}"
        verdict = scan_file(file)
        if verdict.pickle or verdict.imports or verdict.unreadable:
            held.append(Held(file, shown, verdict))
    return held


def is_pickle_based(name: str) -> bool:
    """A file name `new` would give a pickle-based model (never a verdict on a file)."""
    return name.lower().endswith(PICKLE_SUFFIXES)


def artifact_files(path: Path) -> list[Path]:
    """The artifact itself when it is a file; a folder's files. The artifact may be a link
    inside the repository (artifacts.check refuses one out of it, and links inside a
    folder): what it names is what the server loads."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if stat.S_ISREG(mode):
        return [path]
    if not stat.S_ISDIR(mode):
        return []
    found = []
    for directory, folders, files in os.walk(path, onerror=_unlistable):
        folders.sort()
        found += [Path(directory, name) for name in sorted(files)]
    return [file for file in found if file.is_file()]


def _unlistable(error: OSError) -> None:
    raise error


_SEEN: dict[tuple[str, int, int, int, int], Verdict] = {}  # this process's verdicts, by stat


def scan_file(path: Path) -> Verdict:
    """The verdict on one file: from this process's or the cache's when these bytes were
    judged before; a file whose first opcodes run nothing is read no further."""
    try:
        facts = path.stat()
        seen = (str(path), facts.st_dev, facts.st_ino, facts.st_size, facts.st_mtime_ns)
        if seen in _SEEN:
            return _SEEN[seen]
        if not _may_hold_pickle(path):
            return Verdict()
        digest = _sha256(path)
    except OSError as exc:
        return Verdict(pickle=True, unreadable=f"it cannot be read ({exc.strerror})")
    key = f"{_scanner_version()}|{WALK_VERSION}|{digest}"
    cached = cache.load("pickle-scan", key)
    verdict = Verdict.from_json(cached) if cached is not None else None
    if verdict is None:
        verdict = _scan(path)
        cache.store("pickle-scan", key, verdict.to_json())
    _SEEN[seen] = verdict
    return verdict


def _may_hold_pickle(path: Path) -> bool:
    """A container any loader of model files opens, or a pickle stream a loader would run an
    import of, or read to its end (STOP): opcodes are read from the start only until the
    first import, the STOP or the first byte no loader reads, which for a file of another
    format (GGUF, ONNX, safetensors, JSON, text) comes within its first bytes."""
    with open(path, "rb") as stream:
        if _container(stream.read(8)) is not None:
            return True
        stream.seek(0)
        try:
            for opcode, argument, _ in pickletools.genops(stream):
                if opcode.name == "PROTO" and argument > _HIGHEST_PROTOCOL:
                    return False
                if opcode.name in _IMPORTS or opcode.name == "STOP":
                    return True
        except (ValueError, EOFError):
            return False
    return False


def _container(head: bytes) -> str | None:
    if head.startswith(_ZIP):
        return "zip"
    return next((name for magic, name in _COMPRESSED if head.startswith(magic)), None)


def _scan(path: Path) -> Verdict:
    found = _Found()
    try:
        with open(path, "rb") as stream:
            found.source(stream, depth=0)
    except Unfollowable as exc:
        return Verdict(pickle=True, imports=found.names(), unreadable=str(exc))
    except OSError as exc:
        return Verdict(pickle=True, unreadable=f"it cannot be read ({exc.strerror})")
    return Verdict(found.pickle, found.names(), found.second_opinion())


@dataclass
class _Found:
    """What the walks of one file found: whether a pickle, the names imported, and the
    opcode streams (without array data) for the second opinion."""

    pickle: bool = False
    imports: dict[str, None] = field(default_factory=dict)
    streams: list[bytes] = field(default_factory=list)
    unpacked: int = 0

    def names(self) -> tuple[str, ...]:
        return tuple(self.imports)

    def source(self, stream: IO[bytes], depth: int, joblib: bool = False) -> None:
        """The pickles in `stream`: a zip's members, a compressed stream's content, or the
        stream itself as a pickle (`joblib`: it was compressed, so only joblib reads it)."""
        if depth > MAX_DEPTH:
            raise Unfollowable(f"it nests containers more than {MAX_DEPTH} deep")
        head = stream.read(8)
        stream.seek(0)
        kind = _container(head)
        if kind == "zip":
            self._zip(stream, depth)
        elif kind is not None:
            self.source(self._unpacked(stream, kind), depth + 1, joblib=True)
        else:
            self._pickles(stream, joblib)

    def _zip(self, stream: IO[bytes], depth: int) -> None:
        """Every member a loader may unpickle: one named like a pickle (PyTorch's data.pkl),
        one that starts like a pickle (protocol 2 and later), or a container."""
        try:
            with zipfile.ZipFile(stream) as archive:
                for member in archive.infolist():
                    if member.is_dir():
                        continue
                    data = self._member(archive, member)
                    if member.filename.lower().endswith((".pkl", ".pickle")) or (
                        data[:1] == b"\x80" or _container(data[:8]) is not None
                    ):
                        self.source(io.BytesIO(data), depth + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
            raise Unfollowable(f"it is a zip archive the scan cannot open ({exc})") from exc
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise Unfollowable(f"a member of its zip archive is damaged ({exc})") from exc

    def _member(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
        with archive.open(member) as reader:
            return self._read_capped(reader).getvalue()

    def _unpacked(self, stream: IO[bytes], kind: str) -> IO[bytes]:
        """A compressed stream's content, as joblib unpacks it (picking the decompressor by
        the magic bytes); what unpacks before damaged data is what a loader reads."""
        if kind == "lz4":
            raise Unfollowable("it is compressed with lz4, which the scan cannot unpack")
        data = io.BytesIO()
        try:
            with _decompressor(kind, stream) as reader:
                self._read_capped(reader, data)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            if not data.tell():
                raise Unfollowable(f"its {kind} compression is damaged ({exc})") from exc
        data.seek(0)
        return data

    def _read_capped(self, reader: IO[bytes], data: io.BytesIO | None = None) -> io.BytesIO:
        data = io.BytesIO() if data is None else data
        while chunk := reader.read(CHUNK):
            data.write(chunk)
            self.unpacked += len(chunk)
            if self.unpacked > MAX_UNPACKED:
                raise Unfollowable(f"it unpacks to more than {MAX_UNPACKED // CHUNK} MiB")
        return data

    def _pickles(self, stream: IO[bytes], joblib: bool) -> None:
        """The pickle at the start of `stream`, and those right after it (PyTorch's legacy
        format is several in a row). Each is walked as joblib.load reads it; one holding
        joblib array data also as pickle.load reads it, unless only joblib can (`joblib`)."""
        start = stream.tell()
        while True:
            walk = self._walk(stream, start, JOBLIB)
            if walk.wrapped and not joblib:
                self._walk(stream, start, PICKLE)
            if not walk.complete:
                return
            start = walk.end
            stream.seek(start)
            if stream.read(1) != b"\x80":
                return

    def _walk(self, stream: IO[bytes], start: int, how: str) -> _Walk:
        pending = [(start, how)]
        first = None
        while pending:
            offset, mode = pending.pop(0)
            stream.seek(offset)
            walk = _Walk(stream, mode)
            try:
                opcodes = walk.run()
            finally:
                self.imports.update(dict.fromkeys(walk.imports))
            first = first or walk
            if walk.ran:
                self.pickle = self.pickle or walk.complete or bool(walk.imports)
                self.streams.append(opcodes)
            pending.extend((nested, NESTED) for nested in walk.nested)
        assert first is not None
        return first

    def second_opinion(self) -> tuple[str, ...]:
        """The names picklescan rates dangerous in the walked opcodes."""
        if not self.streams:
            return ()
        scanner = _scanner()
        result = scanner.ScanResult([])
        for index, opcodes in enumerate(self.streams):
            result.merge(scanner.scan_pickle_bytes(io.BytesIO(opcodes), f"stream {index}"))
        return tuple(
            sorted(
                {
                    f"{found.module}.{found.name}"
                    for found in result.globals
                    if found.safety.value == "dangerous"
                }
            )
        )


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


# --- following a pickle stream as pickle and joblib load it --------------------------------


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
    (JOBLIB: a BUILD of an array wrapper reads the array raw), by pickle.load (PICKLE: joblib
    array data is read as opcodes, as far as that goes), or by pickle.load inside a joblib
    file (NESTED: an array of Python objects). The result is the opcodes' bytes without
    FRAMEs and without the raw array data, up to the STOP or where a loader fails."""

    def __init__(self, source: IO[bytes], how: str) -> None:
        self.source, self.how = source, how
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.out = bytearray()
        self.nested: list[int] = []  # where the nested pickles start in the source
        self.imports: list[str] = []  # module.name of each import, in order
        self.ran = False  # a loader runs at least one opcode of it
        self.complete = False  # a loader reads it to its STOP
        self.wrapped = False  # it holds a joblib array wrapper
        self.end = 0  # where its STOP ends in the source

    def run(self) -> bytes:
        try:
            for opcode, argument, position in pickletools.genops(self.source):
                self.ran = True
                self._copy(opcode.name, argument, position or 0)
                if opcode.name == "STOP":
                    self.complete, self.end = True, self.source.tell()
                    return bytes(self.out)
                self._apply(opcode.name, argument)
        except (_LoaderFails, ValueError, IndexError, KeyError, TypeError, EOFError):
            pass  # a loader fails here too, having run what came before
        except Unfollowable:
            # pickle.load reading joblib array data as opcodes: the imports on the way are
            # judged; the rest is numbers, which no allowed name turns into code
            if not (self.how == PICKLE and self.wrapped):
                raise
        return bytes(self.out + b".")

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
        """FRAME."""

    def _proto(self, protocol: Any) -> None:
        if protocol > _HIGHEST_PROTOCOL:
            raise _LoaderFails(f"unsupported pickle protocol {protocol}")

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
        if not (_DOTTED.fullmatch(module) and _DOTTED.fullmatch(attribute)):
            raise _LoaderFails(f"no module or attribute can be named {module}.{attribute}")
        found = _Global(module, attribute)
        self.imports.append(f"{module}.{attribute}")
        if found.of_joblib and not found.wrapper and self.how != PICKLE:
            raise Unfollowable(f"it imports {module}.{attribute}, which joblib loads its own way")
        return found

    def _build(self, built_from: Any, arguments: Any, how: str) -> _Object:
        if not isinstance(built_from, _Global):
            if not isinstance(built_from, _Object):
                raise _LoaderFails(f"{how} calls a value that cannot be called")
            raise Unfollowable("it calls a value it built while loading, not a name it imports")
        if built_from.wrapper and self.how != PICKLE:
            if how != "NEWOBJ" or arguments != ():
                raise Unfollowable("it makes a joblib array wrapper in an unusual way")
            self.wrapped = True
            return _Wrapper(built_from, arguments)
        self.wrapped = self.wrapped or built_from.wrapper
        self._taken(arguments)
        return _Object(built_from, arguments)

    def _built(self, state: Any) -> None:
        """BUILD: the object on top of the stack gets `state`. joblib then replaces an array
        wrapper with the array it reads (NumpyUnpickler.load_build)."""
        target = self.stack[-1]
        if not isinstance(target, _Wrapper) or self.how != JOBLIB:
            if isinstance(target, _Object):
                target.state = state
            return
        self._array(state)
        self.stack[-1] = _Object("array", ())

    def _taken(self, value: Any) -> Any:
        """`value` used as data: joblib's array wrapper class may only be called, bare."""
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, _Global) and item.wrapper and self.how != PICKLE:
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
    "PROTO": _Walk._proto,
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
_STRUCTURED = re.compile(r"\|?V(?P<size>\d+)")


def _itemsize(dtype: _Object) -> tuple[int, bool]:
    """(bytes per element, holds Python objects) of a numpy dtype as pickled:
    numpy.dtype(TYPE, False, True), then BUILD with (version, byteorder, subarray, names,
    fields, elsize, alignment, flags). Plain fixed-size, string, object and structured dtypes
    (a tree's nodes) are sized; subarray and bare void ones are not followed, nor a state
    whose element size disagrees with the type."""
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
    structured = _STRUCTURED.fullmatch(code)
    if structured is not None:
        return int(structured["size"]), _structured_objects(dtype.state, int(structured["size"]))
    found = _TYPE.fullmatch(code)
    if found is None:
        raise Unfollowable(f"a joblib array has dtype {code!r}, which the scan cannot size")
    size = int(found["size"]) * _CHARACTER_BYTES.get(found["kind"], 1)
    _check_dtype_state(dtype.state, size, flexible=found["kind"] in _CHARACTER_BYTES)
    return size, False


def _structured_objects(state: Any, size: int) -> bool:
    """Whether a structured dtype's fields hold Python objects (joblib then pickles the array
    whole); its state must name fields and the size its type names, and no subarray."""
    if not (
        isinstance(state, tuple)
        and len(state) >= 6
        and state[2] is None
        and isinstance(state[4], dict)
        and state[4]
        and state[5] == size
    ):
        raise Unfollowable("a joblib array has a void or subarray dtype the scan cannot size")
    objects = False
    for described in state[4].values():
        if not (isinstance(described, tuple) and described and isinstance(described[0], _Object)):
            raise Unfollowable("a joblib array has a structured dtype the scan cannot read")
        objects = _itemsize(described[0])[1] or objects
    return objects


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
