"""File I/O for the writer and the runners: plain `os` for local paths, Apache
Beam's `FileSystems` for any `scheme://` path (gs://, s3://, hdfs://, or a scheme
a plugin registers).

The local runner only ever gets local paths, so it never imports Beam; a remote path
imports Beam lazily and needs apache-beam (`pip install ".[beam]"` from a checkout;
s3:// also boto3). Remote paths are kept as strings throughout:
`pathlib.Path("gs://b/x")` would fold the double slash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from typing import BinaryIO

from cocoprep.errors import (MISSING_FILE, UNREADABLE_FILE, UNSAFE_PATH, CocoprepError,
                             InputError, ItemSkipped)

_SCHEME = re.compile(r"^[a-zA-Z][-a-zA-Z0-9+.]*://")
_CHUNK = 1 << 22

BEAM_INSTALL_HINT = 'pip install "apache-beam>=2.60"'  # works wherever cocoprep came from


class BeamMissing(CocoprepError):
    """`--runner beam` or a remote path without apache-beam installed."""

    def __init__(self, what: str):
        super().__init__(f"{what} needs Apache Beam, which is not installed: {BEAM_INSTALL_HINT}")


def is_remote(path: object) -> bool:
    """True for `scheme://...` paths (a Windows drive letter is one character)."""
    return isinstance(path, str) and bool(_SCHEME.match(path)) and not path.startswith("file://")


# Client libraries Beam's filesystem for a scheme needs but apache-beam does not pull in
_SCHEME_NEEDS = {"s3": ("boto3", "pip install boto3")}


def beam_filesystems(what: str = "a remote path", path: str | None = None):
    """Beam's `FileSystems`, imported on first use; for `path`, also the client
    library its scheme needs (Beam's own message for a missing one comes wrapped in
    two listing errors)."""
    try:
        from apache_beam.io.filesystems import FileSystems
    except ImportError:
        raise BeamMissing(what) from None
    scheme = path.split("://", 1)[0].lower() if path and is_remote(path) else None
    if scheme in _SCHEME_NEEDS:
        module, hint = _SCHEME_NEEDS[scheme]
        try:
            __import__(module)
        except ImportError:
            raise CocoprepError(f"{scheme}:// paths need {module}, which is not installed: "
                                f"{hint}") from None
    return FileSystems


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *parts]) if parts else base
    return os.path.join(base, *parts)


def open_read(path: str) -> BinaryIO:
    if is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes

        return beam_filesystems(path=path).open(path,
                                                compression_type=CompressionTypes.UNCOMPRESSED)
    return open(path, "rb")


def open_write(path: str) -> BinaryIO:
    if is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes

        stream = beam_filesystems(path=path).create(
            path, compression_type=CompressionTypes.UNCOMPRESSED)
        return _RemoteWriter(stream)  # type: ignore[return-value]
    return open(path, "wb")


class _RemoteWriter:
    """A Beam write stream that can also write an empty file to S3. Beam's S3
    uploader completes an empty file's multipart upload with no part, which S3
    refuses (MalformedXML); S3 takes one empty part as an empty object. An empty
    `skipped.jsonl`, or a shard whose every item was skipped, is such a file."""

    def __init__(self, stream):
        self._stream, self._written = stream, 0

    def write(self, data) -> int:
        n = self._stream.write(data)
        self._written += len(data)
        return n

    def close(self) -> None:
        if self._written == 0 and not self._stream.closed:
            uploader = getattr(getattr(self._stream, "raw", None), "_uploader", None)
            if getattr(uploader, "parts", None) == [] and hasattr(uploader, "_write_to_s3"):
                uploader._write_to_s3(b"")
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def read_all(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def write_all(path: str, data: bytes) -> None:
    with open_write(path) as f:
        f.write(data)


def copy_from_local(local: str, dest: str) -> None:
    """Copy a local file to `dest` (local or remote)."""
    if not is_remote(dest):
        shutil.copyfile(local, dest)
        return
    with open(local, "rb") as src, open_write(dest) as out:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            out.write(chunk)


def copy_to_local(path: str, local: str) -> None:
    with open_read(path) as src, open(local, "wb") as out:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            out.write(chunk)


def exists(path: str) -> bool:
    return beam_filesystems().exists(path) if is_remote(path) else os.path.exists(path)


def rename(src: str, dest: str) -> None:
    """Move one file, replacing `dest` (object stores: copy then delete)."""
    if not is_remote(src):
        os.replace(src, dest)
        return
    fs = beam_filesystems()
    if fs.exists(dest):
        fs.delete([dest])
    fs.rename([src], [dest])


def delete(paths: list[str]) -> None:
    """Delete files that exist; missing ones are fine."""
    remote = [p for p in paths if is_remote(p)]
    for p in paths:
        if not is_remote(p):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
    if remote:
        fs = beam_filesystems()
        present = [p for p in remote if fs.exists(p)]
        if present:
            fs.delete(present)


def list_files(pattern: str) -> list[tuple[str, int, float]]:
    """(path, size, modified time) of the files matching a glob, sorted by path.
    Remote patterns follow Beam's match rules (`**` crosses folders)."""
    if not is_remote(pattern):
        import glob

        out = []
        for p in glob.glob(pattern, recursive=True):
            if os.path.isfile(p):
                st = os.stat(p)
                out.append((p, st.st_size, st.st_mtime))
        return sorted(out)
    result = beam_filesystems(path=pattern).match([pattern])[0]
    return sorted((m.path, m.size_in_bytes, m.last_updated_in_seconds)
                  for m in result.metadata_list)


def makedirs(path: str) -> None:
    """Create a local folder; object stores have none to create."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def remove_tree(path: str) -> None:
    """Delete a folder and everything under it."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    files = [p for p, _, _ in list_files(path.rstrip("/") + "/**")]
    if files:
        beam_filesystems().delete(files)
    try:  # filesystems with folders keep the empty folder otherwise
        if beam_filesystems().exists(path):
            beam_filesystems().delete([path])
    except Exception:
        pass


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes (local or remote), read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open_read(str(path)) as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remote_image_path(root: str, file_name: object) -> str:
    """`file_name` joined under a remote `root`, refusing anything that escapes it:
    the same rule as `images.resolve_image_path` (object stores have no links)."""
    if not isinstance(file_name, str) or not file_name or "\x00" in file_name:
        raise ItemSkipped(UNSAFE_PATH, f"file name {file_name!r} is not a usable relative path")
    if file_name.startswith(("/", "\\")) or is_remote(file_name) or re.match(r"^[a-zA-Z]:", file_name):
        raise ItemSkipped(UNSAFE_PATH, f"{file_name!r} is an absolute path")
    norm = posixpath.normpath(file_name.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise ItemSkipped(UNSAFE_PATH, f"{file_name!r} points outside {root}")
    return join(root, norm)


def read_image_bytes(path: str) -> bytes:
    """A remote image's bytes; a missing or unreadable object is a per-item skip."""
    try:
        return read_all(path)
    except Exception as e:  # Beam wraps every backend's errors in its own types
        if not exists(path):
            raise ItemSkipped(MISSING_FILE, f"{path} does not exist") from None
        raise ItemSkipped(UNREADABLE_FILE, f"{path}: {e}") from None


class RemoteView:
    """Local stand-ins for remote inputs, for the driver's discovery and JSON
    reading: the JSON files and the folder skeleton (no images) near the top of a
    remote SRC are copied to a temp folder; `to_remote` maps a path in there back to
    the remote one (what workers read and the manifest records)."""

    def __init__(self, src: str, images: str | None, mapping: dict[str, str]):
        self.src, self.images, self._mapping = src, images, mapping

    def to_remote(self, path: object) -> str:
        text = str(path)
        for local, remote in self._mapping.items():
            if text == local or text.startswith(local + os.sep):
                rest = text[len(local):].lstrip(os.sep)
                return join(remote, *rest.split(os.sep)) if rest else remote
        return text

    def in_text(self, text: str) -> str:
        """`text` (a note, a skip's detail) naming the remote originals where it named
        their temp copies: no temp path reaches an output or a message."""
        for local, remote in self._mapping.items():
            text = text.replace(local, remote)
        return text


def _mirror(remote: str, local: str, *, depth: int, keep) -> list[str]:
    """Copy the files under `remote` (at most `depth` folders down) that `keep(rel)`
    accepts, and make every folder seen at that depth, into `local`. Returns the
    relative name of every file listed, at any depth."""
    base = remote.rstrip("/")
    os.makedirs(local, exist_ok=True)
    listed = []
    for path, _, _ in list_files(join(base, "**")):
        rel = path[len(base):].lstrip("/")
        listed.append(rel)
        parts = rel.split("/")
        if len(parts) - 1 > depth or any(p in ("", ".", "..") for p in parts):
            continue
        folder = os.path.join(local, *parts[:-1])
        os.makedirs(folder, exist_ok=True)
        if keep(rel):
            copy_to_local(path, os.path.join(local, *parts))
    return listed


_YOLO_NAMES = ("data.yaml", "obj.data", "classes.txt", "obj.names")


def _refuse_non_coco(src: str, names: list[str]) -> None:
    """A remote SRC is read through its COCO JSON files only: Pascal VOC or YOLO data
    there is refused by what it is, not as "none of these"."""
    lower = [n.lower() for n in names]
    if any(n.endswith(".json") for n in lower):
        return
    if any(n.endswith(".xml") for n in lower):
        found = "Pascal VOC XMLs"
    elif any(n.endswith(".txt") or n.rsplit("/", 1)[-1] in _YOLO_NAMES for n in lower):
        found = "YOLO labels"
    else:
        return
    raise InputError(src, "COCO JSON under a remote SRC (Pascal VOC and YOLO data are read "
                     "from a local copy: copy SRC down first)", found)


@contextlib.contextmanager
def remote_view(src: object, images: object = None):
    """A `RemoteView` of `src`/`images`; local paths pass through unchanged."""
    src_s, images_s = str(src), (None if images is None else str(images))
    if not is_remote(src_s) and not is_remote(images_s):
        yield RemoteView(src_s, images_s, {})
        return
    tmp = tempfile.mkdtemp(prefix="cocoprep-src-")
    try:
        mapping: dict[str, str] = {}
        local_src = src_s
        if is_remote(src_s):
            top = os.path.join(tmp, "src")
            if src_s.lower().endswith(".json"):  # one file, and its same-split siblings
                parent, name = src_s.rstrip("/").rsplit("/", 1)
                suffix = name[name.rfind("_"):] if "_" in name else name
                _mirror(parent, top, depth=0, keep=lambda rel: rel == name or rel.endswith(suffix))
                local_src, mapping[top] = os.path.join(top, name), parent
            else:
                listed = _mirror(src_s, top, depth=2,
                                 keep=lambda rel: rel.lower().endswith(".json"))
                _refuse_non_coco(src_s, listed)
                local_src, mapping[top] = top, src_s.rstrip("/")
        local_images = images_s
        if is_remote(images_s):
            local_images = os.path.join(tmp, "images")
            _mirror(images_s, local_images, depth=1, keep=lambda rel: False)
            mapping[local_images] = images_s.rstrip("/")
        view = RemoteView(local_src, local_images, mapping)
        try:
            yield view
        except CocoprepError as e:  # name the remote file, not its temp copy
            e.message = view.in_text(e.message)
            e.args = (e.message,)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
