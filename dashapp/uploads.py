"""Uploaded models: checked in memory, kept under generated names, reachable by an
unguessable id, deleted after a time to live.

* The bytes come from ``dcc.Upload`` as a base64 data URL.  They are decoded and parsed
  with :func:`analysis.parse_model_bytes` (external data refused, never followed) before
  anything is written.  Nothing here imports onnxruntime or calls ``onnx.load`` on a path.
* Each accepted file is written alone in its own folder, ``<root>/<id>/model.onnx``, with
  its record beside the folder (``<root>/<id>.json``: shown name, size, time).  The
  client's file name is only ever shown (as text), never used as a path.
* An id is ``u-`` + 22 url-safe random characters (128 bits).  Whoever holds it (the
  session that uploaded, or a copied link) can open the model; there is no listing.
* Uploads older than the time to live are deleted at start-up, on upload, and when an
  expired id is asked for.  A disk quota bounds the folder.

No Dash import: callbacks call these and tests call them directly.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
import unicodedata
from pathlib import Path

import analysis

from .models import QUANT_OPS, Catalogue, ModelEntry

__all__ = ["UploadError", "UploadStore", "WithUploads", "clean_filename", "decode_contents",
           "is_upload_id", "dropdown_options", "session_ids", "missing_upload_note", "MAX_SESSION_UPLOADS"]

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"u-[A-Za-z0-9_-]{22}")
_MODEL_FILE = "model.onnx"
_MAX_NAME = 120                 # characters of the client's file name kept for display
_STALE_PARTIAL = 3600           # seconds before a half-written upload folder is removed
_CLEANUP_EVERY = 300            # seconds between clean-ups triggered by look-ups
#: Most uploads one browser session keeps in its list.
MAX_SESSION_UPLOADS = 16


class UploadError(ValueError):
    """An upload was refused; the message says why (shown to the user)."""


def is_upload_id(value) -> bool:
    """``True`` for a string shaped like an upload id (says nothing about existence)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def clean_filename(name) -> str:
    """The client's file name as display text: control characters dropped, whitespace
    collapsed, at most 120 characters.  Never a path: ``../`` stays as typed."""
    if not isinstance(name, str):
        return "upload.onnx"
    s = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in name)
    s = " ".join(s.split())
    if len(s) > _MAX_NAME:
        s = s[:_MAX_NAME - 1] + "\u2026"
    return s or "upload.onnx"


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n < 10 * 2**20 else f"{n / 2**20:.0f} MB"


def decode_contents(contents, max_bytes: int, shown: str = "the file") -> bytes:
    """Bytes of a ``dcc.Upload`` data URL (``data:<type>;base64,<data>``).

    Raises
    ------
    UploadError
        Not a data URL, not base64, or more than ``max_bytes`` once decoded (checked
        before decoding).
    """
    if not isinstance(contents, str) or not contents.startswith("data:") or "," not in contents:
        raise UploadError(f"{shown} did not arrive as a file; choose it again.")
    comma = contents.index(",")
    if not contents[:comma].endswith(";base64"):
        raise UploadError(f"{shown} did not arrive as a base64 file; choose it again.")
    n = len(contents) - comma - 1
    size = n * 3 // 4 - contents[-2:].count("=") if n else 0
    if size > max_bytes:
        raise UploadError(f"{shown} is {_mb(size)}, over the {_mb(max_bytes)} upload limit. "
                          "Place large models in the server's model folder instead.")
    try:  # strict: nothing but the alphabet and final padding; reads the str without re-encoding it
        return binascii.a2b_base64(contents[comma + 1:], strict_mode=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{shown} did not arrive as valid base64; choose it again.") from None


def _label(name: str, upload_id: str) -> str:
    """Variant label in the tables: the name's stem plus a short tag (two uploads of the
    same file name stay apart; the tag is a hash, it reveals nothing of the id)."""
    stem = name[:-5] if name.lower().endswith(".onnx") and len(name) > 5 else name
    tag = hashlib.sha256(upload_id.encode()).hexdigest()[:6]
    return f"{stem} (upload {tag})"


def _quantized(mg) -> bool:
    ops = {n.op_type for n in mg.nodes}
    for f in mg.proto.functions:
        ops.update(n.op_type for n in f.node)
    return bool(ops & QUANT_OPS)


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a file that must not exist yet (no links followed), then fsync."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class UploadStore:
    """The uploads folder.

    Parameters
    ----------
    root : Path
        Folder of the uploads (created, mode 0700).
    max_bytes : int
        Largest model file accepted.
    ttl_seconds : float
        Age after which an upload is deleted.
    quota_bytes : int
        Most bytes all uploads together may take.
    clock : callable, optional
        Seconds since the epoch (tests pass a fake one).
    """

    def __init__(self, root: str | os.PathLike, *, max_bytes: int, ttl_seconds: float,
                 quota_bytes: int, clock=time.time):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.ttl = float(ttl_seconds)
        self.quota = int(quota_bytes)
        self._clock = clock
        self._last_cleanup = 0.0
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @classmethod
    def from_settings(cls, hs) -> "UploadStore":
        """From :class:`dashapp.config.HostingSettings`."""
        return cls(hs.upload_dir, max_bytes=hs.max_upload_bytes, ttl_seconds=hs.upload_ttl_seconds,
                   quota_bytes=hs.upload_quota_bytes)

    # ------------------------------------------------------------------ writing
    def save(self, contents, filename) -> ModelEntry:
        """Check an upload and keep it; returns its entry.

        Raises
        ------
        UploadError
            Not a model, a model with external data, too big, or no space left.
        """
        name = clean_filename(filename)
        shown = f"'{name if len(name) <= 60 else name[:59] + chr(0x2026)}'"
        data = decode_contents(contents, self.max_bytes, shown)
        try:
            mg = analysis.parse_model_bytes(data, shown)
        except analysis.QuantLensError as e:
            raise UploadError(str(e)) from None
        except Exception:  # noqa: BLE001 - a parser bug must not break the page
            log.exception("upload %s: unexpected error while parsing", shown)
            raise UploadError(f"{shown} could not be read as an ONNX model.") from None
        quantized = _quantized(mg)
        del mg
        self.cleanup()
        if self.usage() + len(data) > self.quota:
            raise UploadError("The server's upload space is full. Try again later, or place the model "
                              "in the server's model folder.")
        upload_id = "u-" + secrets.token_urlsafe(16)
        folder = self.root / upload_id
        folder.mkdir(mode=0o700)
        _write_new(folder / _MODEL_FILE, data)
        record = {"name": name, "size": len(data), "quantized": quantized, "created": self._clock()}
        tmp = self.root / f".{upload_id}.json.tmp"
        _write_new(tmp, json.dumps(record).encode())
        os.replace(tmp, self.root / f"{upload_id}.json")  # the record appears last: a whole upload or none
        log.info("upload %s kept (%d bytes)", upload_id[:6], len(data))
        return self._entry(upload_id, record)

    # ------------------------------------------------------------------ reading
    def get(self, upload_id) -> ModelEntry | None:
        """The entry of a live upload; ``None`` for anything else (never raises)."""
        if not is_upload_id(upload_id):
            return None
        self._maybe_cleanup()
        record = self._record(upload_id)
        if record is None:
            return None
        if self._expired(record):
            self._delete(upload_id)
            return None
        if not (self.root / upload_id / _MODEL_FILE).is_file():
            return None
        return self._entry(upload_id, record)

    def _record(self, upload_id: str) -> dict | None:
        try:
            rec = json.loads((self.root / f"{upload_id}.json").read_text())
        except (OSError, ValueError):
            return None
        ok = (isinstance(rec, dict) and isinstance(rec.get("name"), str) and isinstance(rec.get("size"), int)
              and isinstance(rec.get("created"), (int, float)))
        return rec if ok else None

    def _entry(self, upload_id: str, record: dict) -> ModelEntry:
        return ModelEntry(id=upload_id, name=record["name"], label=_label(record["name"], upload_id),
                          path=self.root / upload_id / _MODEL_FILE, size=record["size"],
                          quantized=bool(record.get("quantized")))

    def _expired(self, record: dict) -> bool:
        return self._clock() - float(record["created"]) > self.ttl

    # ------------------------------------------------------------------ housekeeping
    def usage(self) -> int:
        """Bytes taken by the kept models."""
        total = 0
        for p in self.root.glob("u-*.json"):
            rec = self._record(p.name[:-5]) if is_upload_id(p.name[:-5]) else None
            total += rec["size"] if rec else 0
        return total

    def _delete(self, upload_id: str) -> None:
        try:
            (self.root / f"{upload_id}.json").unlink(missing_ok=True)
        except OSError:
            pass
        folder = self.root / upload_id
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)

    def _maybe_cleanup(self) -> None:
        if self._clock() - self._last_cleanup > _CLEANUP_EVERY:
            self.cleanup()

    def cleanup(self) -> int:
        """Delete expired uploads and stale half-written ones; returns how many went."""
        self._last_cleanup = now = self._clock()
        gone = 0
        try:
            children = list(self.root.iterdir())
        except OSError:
            return 0
        for p in children:
            n = p.name
            try:
                if n.endswith(".json") and is_upload_id(n[:-5]):
                    rec = self._record(n[:-5])
                    if rec is None or self._expired(rec):
                        self._delete(n[:-5])
                        gone += 1
                elif is_upload_id(n) and not (self.root / f"{n}.json").exists():
                    if now - p.lstat().st_mtime > _STALE_PARTIAL:
                        self._delete(n)
                        gone += 1
                elif n.startswith(".u-") and n.endswith(".tmp") and now - p.lstat().st_mtime > _STALE_PARTIAL:
                    p.unlink(missing_ok=True)
            except OSError:
                continue
        if gone:
            log.info("%d expired upload(s) deleted", gone)
        return gone


class WithUploads:
    """The server's :class:`~dashapp.models.Catalogue` plus uploads looked up by id.

    Listing (``entries``, ``options``, the defaults) only ever shows the server's
    models; an upload is found by :meth:`get` when its exact id is given.
    """

    def __init__(self, catalogue: Catalogue, store: UploadStore):
        self.server = catalogue
        self.store = store

    @property
    def root(self) -> Path:
        return self.server.root

    @property
    def entries(self) -> list[ModelEntry]:
        return self.server.entries

    def __len__(self) -> int:
        return len(self.server)

    def get(self, model_id) -> ModelEntry | None:
        """A server model or a live upload; ``None`` for anything else (never raises)."""
        if is_upload_id(model_id):
            return self.store.get(model_id)
        return self.server.get(model_id)

    def options(self) -> list[dict]:
        return self.server.options()

    def reference_guess(self) -> ModelEntry | None:
        return self.server.reference_guess()

    def default_variants(self, ref: ModelEntry | None, limit: int = 4) -> list[ModelEntry]:
        if ref is None or is_upload_id(ref.id):
            return []
        return self.server.default_variants(ref, limit)


def session_ids(value, limit: int = MAX_SESSION_UPLOADS) -> list[str]:
    """Upload ids from a session store or a list of dropdown values: well-formed ids
    only, in order, without repeats, at most ``limit``."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return []
    out = []
    for v in value:
        if is_upload_id(v) and v not in out:
            out.append(v)
    return out[:limit]


def dropdown_options(catalogue, upload_ids) -> list[dict]:
    """Options of the model pickers for one session: the server's models, then the live
    uploads among ``upload_ids`` (by their shown name, as text)."""
    opts = list(catalogue.options())
    for i in session_ids(upload_ids, limit=4 * MAX_SESSION_UPLOADS):
        e = catalogue.get(i)
        if e is not None:
            opts.append({"label": f"{e.name}  (upload{'' if e.quantized else ', float'})", "value": e.id})
    return opts


def missing_upload_note(catalogue, model_ids) -> str | None:
    """What to say when a link names uploads that are gone (expired, or never here)."""
    gone = [i for i in session_ids(model_ids, limit=4 * MAX_SESSION_UPLOADS) if catalogue.get(i) is None]
    if not gone:
        return None
    store = getattr(catalogue, "store", None)
    kept = f"{store.ttl / 3600:g} hours" if store is not None else "a limited time"
    return f"Uploaded models are kept for {kept}: upload the model again."
