"""Image bytes in the database row or in a directory."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from herald_common.images.storage import ImageBytesMissing, ImageStore, storage_key
from herald_common.models import Image
from tests.conftest import make_settings

TENANT = str(uuid.uuid4())
DATA = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100


def image_row(stored, image_id: str) -> Image:
    return Image(
        id=image_id,
        tenant_id=TENANT,
        prompt="p",
        style="minimalist",
        width=64,
        height=64,
        sha256="0" * 64,
        renderer="pillow",
        data=stored.data,
        storage_key=stored.storage_key,
    )


def test_the_default_store_keeps_the_bytes_in_the_row() -> None:
    store = ImageStore.from_settings(make_settings())
    image_id = str(uuid.uuid4())

    stored = store.put(TENANT, image_id, DATA)

    assert store.directory is None
    assert stored.data == DATA and stored.storage_key is None
    assert store.read(image_row(stored, image_id)) == DATA


def test_a_directory_store_writes_one_file_per_image_under_its_tenant(tmp_path: Path) -> None:
    # Given IMAGE_STORAGE naming a directory
    store = ImageStore.from_settings(make_settings(image_storage=str(tmp_path / "images")))
    image_id = str(uuid.uuid4())

    # When an image is put
    stored = store.put(TENANT, image_id, DATA)

    # Then its bytes are a file under the tenant's directory, and nothing else is left there
    assert stored.data is None
    assert stored.storage_key == f"{TENANT}/{image_id}.png"
    path = tmp_path / "images" / TENANT / f"{image_id}.png"
    assert path.read_bytes() == DATA
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    row = image_row(stored, image_id)
    assert store.read(row) == DATA

    # When it is deleted, the file goes
    store.delete(row)
    assert not path.exists()
    with pytest.raises(ImageBytesMissing):
        store.read(row)


def test_a_key_from_the_database_cannot_reach_outside_the_directory(tmp_path: Path) -> None:
    # Given a file outside the store, and a row whose key points at it
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"do not serve")
    store = ImageStore(tmp_path / "images")
    for key in ("../secret.png", f"{TENANT}/../../secret.png", "/etc/passwd", f"{TENANT}/x.txt"):
        row = image_row(type("S", (), {"data": None, "storage_key": key})(), str(uuid.uuid4()))

        # Then it is never read, nor deleted
        with pytest.raises(ImageBytesMissing):
            store.read(row)
        store.delete(row)
    assert secret.read_bytes() == b"do not serve"


def test_keys_are_built_from_ids_only() -> None:
    with pytest.raises(ValueError, match="not an id"):
        storage_key("../other-tenant", str(uuid.uuid4()))
    with pytest.raises(ValueError, match="not an id"):
        storage_key(TENANT, "a/b")


def test_bytes_in_the_row_are_read_even_after_storage_moved_to_a_directory(tmp_path) -> None:
    image_id = str(uuid.uuid4())
    stored = ImageStore(None).put(TENANT, image_id, DATA)

    assert ImageStore(tmp_path).read(image_row(stored, image_id)) == DATA


def test_a_file_is_not_found_once_the_directory_is_no_longer_configured(tmp_path) -> None:
    image_id = str(uuid.uuid4())
    stored = ImageStore(tmp_path).put(TENANT, image_id, DATA)

    with pytest.raises(ImageBytesMissing, match="IMAGE_STORAGE names no directory"):
        ImageStore(None).read(image_row(stored, image_id))
