"""The headers of an hf:// model, recorded in the repository: models/headers/NAME.json holds
what `modelgate fit refresh` read from the Hugging Face Hub at the spec's pinned revision
(config.json, the safetensors index, and each safetensors file's header, by ranged reads of
the header alone), each with its sha256. Validation reads the record, never the network: a
fresh machine without access to the Hub gives the verdict the reviewer saw. A record of
another source or revision than the spec pins is refused; refresh writes it again.

    {"source": "hf://ORG/NAME", "revision": "COMMIT",
     "files": {"config.json": {"sha256": "...", "text": "{...}"},
               "model.safetensors": {"sha256": "...", "header": "{...}"}}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from ... import paths
from . import config, safetensors
from .model import Model, Unreadable

DIRECTORY = "models/headers"
MAX_RECORD = 256 * 2**20  # headers of a model of thousands of shards
HF = "hf://"
CONFIG_BYTES = 100_000  # the first ranged read of a safetensors file, as the Hub client's
HEADER_CACHE = "hf-safetensors-header"


class NotRecorded(Exception):
    """No record of the model's headers in the repository."""


class Mismatch(Exception):
    """A record of another source or revision than the spec pins."""


def shown_path(name: str) -> str:
    return f"{DIRECTORY}/{name}.json"


def load(root: Path, name: str, source: str, revision: str) -> Model:
    shown = shown_path(name)
    path = root / shown
    if paths.leads_out(path, root):
        raise Unreadable(f"{shown} leads out of the repository through a symbolic link")
    if not path.is_file():
        raise NotRecorded(shown)
    if path.stat().st_size > MAX_RECORD:
        raise Unreadable(f"{shown}: over the {MAX_RECORD}-byte limit of a record")
    try:
        record = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"{shown}: not JSON ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        raise Unreadable(f"{shown}: not a record of headers (no files)")
    if (record.get("source"), record.get("revision")) != (source, revision):
        raise Mismatch(
            f"{shown} records {record.get('source')}@{record.get('revision')}, where the spec "
            f"pins {source}@{revision}"
        )
    return model_of(record["files"], shown)


def model_of(files: dict[str, Any], shown: str) -> Model:
    attention = config.attention(_text(files, config.NAME, "text", shown), f"{shown}: config.json")
    if safetensors.INDEX in files:
        index = _text(files, safetensors.INDEX, "text", shown)
        named, _ = safetensors.shards(index, f"{shown}: {safetensors.INDEX}")
    elif safetensors.SINGLE in files:
        named = [safetensors.SINGLE]
    else:
        raise Unreadable(f"{shown}: records neither {safetensors.INDEX} nor {safetensors.SINGLE}")
    tensors = []
    for shard in named:
        header = _text(files, shard, "header", shown)
        tensors += safetensors.parse_header(header, f"{shown}: {shard}", None)
    return Model(tuple(tensors), attention)


def _text(files: dict[str, Any], name: str, field: str, shown: str) -> bytes:
    """A recorded file's text, checked against its sha256."""
    entry = files.get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get(field), str):
        raise Unreadable(f"{shown}: no {field} recorded for {name}")
    raw = entry[field].encode("utf-8")
    if hashlib.sha256(raw).hexdigest() != entry.get("sha256"):
        raise Unreadable(f"{shown}: the {field} recorded for {name} differs from its sha256")
    return raw


# -- refresh: read the headers from the Hub (`modelgate fit refresh`) ---------------------------


def fetch(source: str, revision: str) -> dict[str, Any]:
    """The record of an hf:// model's headers at `revision`, read from the Hub (HF_ENDPOINT,
    HF_TOKEN) with its client: config.json and the index whole, each safetensors file's
    header by ranged reads, cached by the file's content (its ETag, the sha256 the Hub keeps
    large files under): a shard another revision or model shares is not read again. Raises
    Unreadable with the reason."""
    from httpx2 import HTTPError  # the transport of the Hub's client (huggingface-hub 2)
    from huggingface_hub import get_hf_file_metadata, get_session, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    repo = source.removeprefix(HF).split(":", 1)[0]
    headers = build_hf_headers()

    def get(name: str, span: str = "") -> Any:
        url = hf_hub_url(repo, name, revision=revision)
        asked = {**headers, "range": f"bytes={span}"} if span else headers
        response = get_session().get(url, headers=asked, follow_redirects=True, timeout=30)
        if response.status_code == 404:
            return None
        hf_raise_for_status(response)
        return response

    def whole(name: str) -> dict[str, str] | None:
        response = get(name)
        if response is None:
            return None
        return _entry("text", response.content, f"{source}@{revision}/{name}")

    try:
        files = {config.NAME: whole(config.NAME)}
        if files[config.NAME] is None:
            raise Unreadable(f"{source}@{revision} has no config.json")
        index = whole(safetensors.INDEX)
        if index is not None:
            files[safetensors.INDEX] = index
            named, _ = safetensors.shards(index["text"].encode(), f"{source}/{safetensors.INDEX}")
        else:
            named = [safetensors.SINGLE]
        for shard in named:
            etag = get_hf_file_metadata(hf_hub_url(repo, shard, revision=revision)).etag
            shown = f"{source}@{revision}/{shard}"
            files[shard] = _cached_header(etag, lambda s=shard, at=shown: _header(get, s, at))
    except HfHubHTTPError as exc:
        raise Unreadable(f"{source}@{revision}: the Hub answered {exc}") from None
    except (HTTPError, OSError) as exc:
        raise Unreadable(f"{source}@{revision}: the Hub cannot be reached ({exc})") from None
    record = {"source": source, "revision": revision, "files": files}
    model_of(files, source)  # what validation will read must be readable
    return record


def _header(get, name: str, shown: str) -> dict[str, str]:
    first = get(name, f"0-{CONFIG_BYTES}")
    if first is None:
        raise Unreadable(f"{shown}: not in the repository at that revision")
    length = safetensors.header_length(first.content[:8], shown)
    if 8 + length <= len(first.content):
        header = first.content[8 : 8 + length]
    else:
        header = get(name, f"8-{length + 7}").content
    if len(header) != length:
        raise Unreadable(f"{shown}: the Hub sent {len(header)} header bytes of {length}")
    return _entry("header", header, shown)


def _cached_header(etag: str | None, read) -> dict[str, str]:
    """A header from the cache by the content its file's ETag names, else read (and kept).
    A cache entry is sealed (validator/cache.py) and its text checked against its sha256."""
    from ... import cache

    if etag:
        kept = cache.load(HEADER_CACHE, etag)
        if kept is not None:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                entry = json.loads(kept)
                text = entry.get("header", "") if isinstance(entry, dict) else ""
                if hashlib.sha256(text.encode()).hexdigest() == entry.get("sha256"):
                    return entry
    entry = read()
    if etag:
        cache.store(HEADER_CACHE, etag, json.dumps(entry).encode())
    return entry


def _entry(field: str, raw: bytes, shown: str) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{shown}: not UTF-8") from None
    return {"sha256": hashlib.sha256(raw).hexdigest(), field: text}


def write(root: Path, name: str, record: dict[str, Any]) -> Path:
    path = root / shown_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path
