"""The files of a pack, read safely from a folder or a .zip, with every limit enforced.

Owns the file-level safety rules of the pack format: which entries a pack may hold (``.yaml``,
``.yml``, ``.csv``, ``.md`` only), safe relative paths (no absolute paths, no ``..``, no zip-slip,
no symlink leading out of the pack, no symlink inside a zip), and the size limits (declared sizes
checked up front, actual bytes counted while reading, so a zip bomb stops at the limit).

It knows nothing of what the files mean: ``templates_library.loader`` parses them.
"""
from __future__ import annotations

import io
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

MB = 1024 * 1024
MAX_MANIFEST_BYTES = 1 * MB
MAX_CSV_BYTES = 20 * MB
MAX_TOTAL_BYTES = 50 * MB
MAX_ENTRIES = 200
ALLOWED_SUFFIXES = frozenset({".yaml", ".yml", ".csv", ".md"})
MANIFEST = "pack.yaml"
# What archivers and version control add on their own: ignored (never read); in a zip they still
# count as entries, a folder's are not even walked.
_LITTER_DIRS = frozenset({"__MACOSX", ".git", ".hg", ".svn"})
_ARCHIVER_LITTER = re.compile(r"(^|/)((__MACOSX|\.git|\.hg|\.svn)/|\.DS_Store$|Thumbs\.db$)")
_DRIVE = re.compile(r"^[A-Za-z]:")


class PackFileError(ValueError):
    """A file-level problem; ``location`` names the entry (or the pack itself)."""

    def __init__(self, location: str, message: str):
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


def check_relative_path(path: str, location: str) -> PurePosixPath:
    """A safe relative POSIX path inside the pack, or ``PackFileError`` saying what is wrong."""
    if not path or "\x00" in path:
        raise PackFileError(location, "empty or invalid path / 路径无效")
    if path.startswith(("/", "\\")) or _DRIVE.match(path):
        raise PackFileError(location, f"absolute path not allowed: {path!r} / 不允许绝对路径")
    if "\\" in path:
        raise PackFileError(location, f"use '/' in paths, not '\\': {path!r} / 路径请使用 '/'")
    parts = path.split("/")
    if ".." in parts:
        raise PackFileError(location, f"'..' not allowed in a path: {path!r} / 路径中不允许 '..'")
    if any(p in ("", ".") for p in parts):
        raise PackFileError(location, f"malformed path: {path!r} / 路径格式错误")
    return PurePosixPath(path)


def _check_suffix(name: str, location: str) -> None:
    if PurePosixPath(name).suffix.lower() not in ALLOWED_SUFFIXES:
        raise PackFileError(location, f"file type not allowed in a pack: {name!r} (only .yaml, .yml, "
                                      f".csv, .md) / 模板包中不允许此类文件")


def _too_big(name: str, limit: int) -> PackFileError:
    return PackFileError(name, f"file larger than {limit // MB} MB / 文件超过 {limit // MB} MB")


def _pack_too_big(source: str, what: str = "pack") -> PackFileError:
    return PackFileError(source, f"{what} over {MAX_TOTAL_BYTES // MB} MB / 模板包超过 {MAX_TOTAL_BYTES // MB} MB")


class PackFiles:
    """The readable files of one pack: ``names()`` and ``read(name, limit)``."""

    source: str

    def names(self) -> list[str]:
        raise NotImplementedError

    def read(self, name: str, limit: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> PackFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FolderFiles(PackFiles):
    def __init__(self, root: Path):
        self.root = root.resolve()
        self.source = str(root)
        self._files: dict[str, Path] = {}
        self._read_total = 0
        total = 0
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(dirpath)
            for d in list(dirnames):
                if d in _LITTER_DIRS:
                    dirnames.remove(d)
                # a symlinked folder is checked, never walked: its files are reachable by their
                # real path if they belong to the pack
                elif (base / d).is_symlink():
                    self._inside(base / d)
                    dirnames.remove(d)
            dirnames.sort()
            for f in sorted(filenames):
                full = base / f
                rel = full.relative_to(self.root).as_posix()
                if _ARCHIVER_LITTER.search(rel):
                    continue
                if len(self._files) >= MAX_ENTRIES:
                    raise PackFileError(self.source, f"more than {MAX_ENTRIES} files / 文件数超过 {MAX_ENTRIES}")
                real = self._inside(full)
                _check_suffix(rel, rel)
                if not real.is_file():
                    raise PackFileError(rel, "not a regular file / 不是普通文件")
                total += real.stat().st_size
                if total > MAX_TOTAL_BYTES:
                    raise _pack_too_big(self.source)
                self._files[rel] = real

    def _inside(self, path: Path) -> Path:
        rel = path.relative_to(self.root).as_posix()
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise PackFileError(rel, "broken symlink / 符号链接无效") from None
        if real != self.root and self.root not in real.parents:
            raise PackFileError(rel, "symlink points outside the pack / 符号链接指向模板包之外")
        return real

    def names(self) -> list[str]:
        return list(self._files)

    def read(self, name: str, limit: int) -> bytes:
        real = self._files.get(name)
        if real is None:
            raise PackFileError(name, "file not found in the pack / 模板包中没有此文件")
        with real.open("rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise _too_big(name, limit)
        self._read_total += len(data)
        if self._read_total > MAX_TOTAL_BYTES:
            raise _pack_too_big(self.source)
        return data


class ZipFiles(PackFiles):
    """A zip whose pack sits at its root or inside one top-level folder."""

    def __init__(self, data: bytes | Path, source: str):
        self.source = source
        self._read_total = 0
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            raise PackFileError(source, f"not a valid zip file ({exc}) / 不是有效的 zip 文件") from exc
        try:
            self._infos = self._check_entries()
        except BaseException:
            self._zip.close()
            raise

    def _check_entries(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise PackFileError(self.source, f"{len(infos)} entries, more than {MAX_ENTRIES} / "
                                             f"条目数超过 {MAX_ENTRIES}")
        files: dict[str, zipfile.ZipInfo] = {}
        declared = 0
        for info in infos:
            name = info.filename
            if _ARCHIVER_LITTER.search(name):
                continue
            check_relative_path(name[:-1] if info.is_dir() else name, name)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise PackFileError(name, "symlinks are not allowed in a zip pack / zip 模板包中不允许符号链接")
            if info.flag_bits & 0x1:
                raise PackFileError(name, "encrypted entries are not supported / 不支持加密条目")
            if info.is_dir():
                continue
            _check_suffix(name, name)
            if name in files:
                raise PackFileError(name, "duplicate entry / 重复的条目")
            declared += info.file_size
            if declared > MAX_TOTAL_BYTES:
                raise _pack_too_big(self.source, "uncompressed size")
            files[name] = info
        return self._strip_top_folder(files)

    def _strip_top_folder(self, files: dict[str, zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        if MANIFEST in files:
            return files
        tops = {n.split("/", 1)[0] for n in files}
        if len(tops) == 1 and all("/" in n for n in files):
            prefix = tops.pop() + "/"
            return {n[len(prefix):]: info for n, info in files.items()}
        return files

    def names(self) -> list[str]:
        return list(self._infos)

    def read(self, name: str, limit: int) -> bytes:
        info = self._infos.get(name)
        if info is None:
            raise PackFileError(name, "file not found in the pack / 模板包中没有此文件")
        if info.file_size > limit:
            raise _too_big(name, limit)
        budget = min(limit, MAX_TOTAL_BYTES - self._read_total)
        try:
            with self._zip.open(info) as fh:
                # Never trust the declared size: read one byte past the budget, at most.
                data = fh.read(budget + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                RuntimeError) as exc:
            raise PackFileError(name, f"cannot read entry ({exc}) / 无法读取条目") from exc
        if len(data) > budget:
            if budget < limit:
                raise _pack_too_big(self.source, "uncompressed size")
            raise _too_big(name, limit)
        self._read_total += len(data)
        return data

    def close(self) -> None:
        self._zip.close()


def open_pack_files(path: str | Path | bytes) -> PackFiles:
    """The files of a pack given as a folder, its ``pack.yaml``, a .zip file, or zip bytes."""
    if isinstance(path, bytes | bytearray | memoryview):
        data = bytes(path)
        if len(data) > MAX_TOTAL_BYTES:
            raise _pack_too_big("upload", "zip")
        return ZipFiles(data, "upload")
    p = Path(path)
    if p.is_dir():
        return FolderFiles(p)
    if p.is_file() and p.name == MANIFEST:
        return FolderFiles(p.parent)
    if p.is_file():
        if p.stat().st_size > MAX_TOTAL_BYTES:
            raise _pack_too_big(str(p), "zip")
        return ZipFiles(p, str(p))
    raise PackFileError(str(p), "no pack here: expected a folder with pack.yaml or a .zip / "
                                "此处没有模板包：需要包含 pack.yaml 的文件夹或 zip 文件")
