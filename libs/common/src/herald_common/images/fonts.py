"""A brand's font names found as font files, else Pillow's bundled scalable font.

Names are matched against the files found, never joined into a path: "Inter" finds
`Inter-Bold.ttf` for a heading and `Inter-Regular.ttf` for body text. The directories searched
are IMAGE_FONT_DIR, then the system's usual ones; a name found nowhere (or a file Pillow cannot
read) falls back to Aileron, which Pillow ≥ 10.1 bundles, so no render depends on the machine.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

log = logging.getLogger(__name__)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

SYSTEM_FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:\\Windows\\Fonts",
)
_EXTENSIONS = (".ttf", ".otf", ".ttc")
#: A directory tree is indexed once; this many files at most (a font directory, not a disk).
MAX_FONT_FILES = 20_000
_WORD = re.compile(r"[^a-z0-9]")
_BOLD = ("bold", "semibold", "demibold", "extrabold", "black", "heavy")
_REGULAR = ("regular", "book", "roman", "normal", "medium", "")


def normalize(name: str) -> str:
    """A font name or file stem as compared: lower case, letters and digits only."""
    return _WORD.sub("", name.lower())


class FontBook:
    """Finds fonts by name in `directories` (searched in order) and loads them at a size."""

    def __init__(self, directories: Iterable[str | Path]) -> None:
        self._directories = [Path(d).expanduser() for d in directories]
        self._index: dict[str, Path] | None = None

    @classmethod
    def for_font_dir(cls, font_dir: str | None) -> FontBook:
        """IMAGE_FONT_DIR (if set), then the system's font directories."""
        first = [font_dir] if font_dir else []
        return cls([*first, *SYSTEM_FONT_DIRS])

    def _files(self) -> dict[str, Path]:
        """Normalized file stem → file; the first directory to have a stem wins."""
        if self._index is None:
            index: dict[str, Path] = {}
            for directory in self._directories:
                for path in _font_files(directory):
                    index.setdefault(normalize(path.stem), path)
                    if len(index) >= MAX_FONT_FILES:
                        break
            self._index = index
        return self._index

    def find(self, name: str | None, *, bold: bool = False) -> Path | None:
        """The file of font `name` (its bold face for `bold` when there is one); None if none."""
        wanted = normalize(name or "")
        if not wanted:
            return None
        files = self._files()
        weights: Sequence[str] = (*_BOLD, *_REGULAR) if bold else (*_REGULAR, *_BOLD)
        for weight in weights:
            if path := files.get(wanted + weight):
                return path
        if len(wanted) < 3:
            return None
        # "Open Sans" also finds OpenSans-CondensedLight: the shortest stem that starts so.
        starting = sorted((s for s in files if s.startswith(wanted)), key=lambda s: (len(s), s))
        return files[starting[0]] if starting else None

    def load(self, name: str | None, size: int, *, bold: bool = False) -> Font:
        """Font `name` at `size` pixels, or the bundled font when it cannot be found or read."""
        path = self.find(name, bold=bold)
        if path is not None:
            try:
                return _truetype(str(path), size)
            except OSError as exc:
                log.warning(
                    "font %s (%s) cannot be read (%s); using the bundled one", name, path, exc
                )
        return bundled(size)


# Font objects are made per call, not shared: a FreeType face is not safe to use from two
# worker threads at once. The file's bytes are what is worth keeping.
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(io.BytesIO(_font_bytes(path)), size)


@lru_cache(maxsize=32)
def _font_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def bundled(size: int) -> Font:
    """Pillow's bundled Aileron at `size` pixels (a bitmap font if Pillow lacks FreeType)."""
    return ImageFont.load_default(size=size)


def _font_files(directory: Path) -> Iterable[Path]:
    if not directory.is_dir():
        return
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for file in sorted(files):
            if file.lower().endswith(_EXTENSIONS) and not file.startswith("."):
                yield Path(root) / file
