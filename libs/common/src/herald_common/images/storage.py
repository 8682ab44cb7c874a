"""Where an image's bytes live: in its `images` row (`data`, the default), or as a file under
the IMAGE_STORAGE directory (`storage_key`, `{tenant id}/{image id}.png`).

A row read back keeps working after IMAGE_STORAGE changes direction: bytes in the row are read
from the row whatever the setting, files from the directory while it is set. Keys are built
here from ids checked to be ids, and every path is checked to stay under the directory, so a
key from the database cannot point anywhere else. Files are written to a temporary name in the
same directory and renamed into place, so a reader never sees half an image.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from herald_common.models import Image
from herald_common.settings import Settings

log = logging.getLogger(__name__)

DATABASE = "database"
_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class ImageBytesMissing(Exception):
    """Raised when an image's row exists and its bytes cannot be found."""


@dataclass(frozen=True)
class Stored:
    """Where `put` left the bytes: set these on the row."""

    data: bytes | None = None
    storage_key: str | None = None


class ImageStore:
    """Puts, reads and deletes image bytes; `directory` None keeps them in the database."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self._root = Path(directory).expanduser().resolve() if directory else None

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageStore:
        """The store IMAGE_STORAGE names: "database", or a directory path."""
        value = settings.image_storage.strip()
        return cls(None if value in ("", DATABASE) else value)

    @property
    def directory(self) -> Path | None:
        """The directory files go to; None when bytes go to the database."""
        return self._root

    def put(self, tenant_id: str, image_id: str, data: bytes) -> Stored:
        """Keep `data` for the image; files are written atomically."""
        if self._root is None:
            return Stored(data=data)
        key = storage_key(tenant_id, image_id)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as file:
                # mkstemp's 0600 would keep the API, if it runs as another user, from reading it.
                os.fchmod(file.fileno(), 0o640)
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return Stored(storage_key=key)

    def read(self, image: Image) -> bytes:
        """The image's bytes; ImageBytesMissing when they are gone."""
        if image.data is not None:
            return image.data
        if image.storage_key is None:
            raise ImageBytesMissing(f"image {image.id} has neither bytes nor a storage key")
        if self._root is None:
            raise ImageBytesMissing(
                f"image {image.id} is stored as a file, and IMAGE_STORAGE names no directory"
            )
        try:
            return self._path(image.storage_key).read_bytes()
        except (FileNotFoundError, ValueError) as exc:
            raise ImageBytesMissing(f"image {image.id}: {exc}") from None

    def delete(self, image: Image) -> None:
        """Remove the image's file, if it has one (bytes in the row go with the row)."""
        if image.storage_key is None or self._root is None:
            return
        try:
            self._path(image.storage_key).unlink(missing_ok=True)
        except (OSError, ValueError) as exc:
            # The row is gone already: the file is only an orphan, not worth failing for.
            log.warning("image %s: could not remove its file (%s)", image.id, exc)

    def _path(self, key: str) -> Path:
        assert self._root is not None
        parts = key.split("/")
        if len(parts) != 2 or not _ID.match(parts[0]) or not parts[1].endswith(".png"):
            raise ValueError(f"not an image storage key: {key!r}")
        if not _ID.match(parts[1].removesuffix(".png")):
            raise ValueError(f"not an image storage key: {key!r}")
        path = (self._root / parts[0] / parts[1]).resolve()
        if not path.is_relative_to(self._root):
            raise ValueError(f"not an image storage key: {key!r}")
        return path


def storage_key(tenant_id: str, image_id: str) -> str:
    """`{tenant_id}/{image_id}.png`; ValueError unless both are ids."""
    for value in (tenant_id, image_id):
        if not _ID.match(value):
            raise ValueError(f"not an id: {value!r}")
    return f"{tenant_id}/{image_id}.png"
