"""Public media URLs: an image id and an HMAC signature that only Herald can make."""

from __future__ import annotations

import uuid

from herald_common.crypto import generate_key
from herald_common.images.signing import MediaSigner

IMAGE_ID = str(uuid.uuid4())


def test_a_token_verifies_to_its_image_id_and_forms_the_public_url() -> None:
    signer = MediaSigner(generate_key())

    token = signer.token(IMAGE_ID)

    assert token.startswith(f"{IMAGE_ID}.") and token.endswith(".png")
    assert signer.verify(token) == IMAGE_ID
    # The extension is optional on the way back in
    assert signer.verify(token.removesuffix(".png")) == IMAGE_ID
    assert signer.url("https://herald.example/", IMAGE_ID) == (
        f"https://herald.example/media/images/{token}"
    )


def test_a_tampered_forged_or_foreign_token_is_refused() -> None:
    signer = MediaSigner(generate_key())
    token = signer.token(IMAGE_ID)
    image_id, signature, _ = token.split(".")
    other_id = str(uuid.uuid4())

    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in (
        f"{image_id}.{flipped}.png",  # one character of the signature changed
        f"{other_id}.{signature}.png",  # the signature of another image
        MediaSigner(generate_key()).token(IMAGE_ID),  # another Herald's key
        MediaSigner(None).token(IMAGE_ID),  # the development key
        IMAGE_ID,
        "",
        "../../etc/passwd",
        f"{image_id}.{signature}.png.png",
    ):
        assert signer.verify(bad) is None, bad


def test_urls_signed_before_a_key_rotation_stay_valid_while_the_old_key_is_listed() -> None:
    # Given a URL signed with the old key
    old, new = generate_key(), generate_key()
    before = MediaSigner(old).token(IMAGE_ID)

    # When a new key is put first, the old one kept after it
    rotated = MediaSigner(f"{new},{old}")

    # Then the old URL still verifies, new URLs are signed with the new key
    assert rotated.verify(before) == IMAGE_ID
    assert rotated.token(IMAGE_ID) == MediaSigner(new).token(IMAGE_ID) != before
    # and once the old key is dropped, the old URL no longer does
    assert MediaSigner(new).verify(before) is None


def test_without_keys_every_process_signs_with_the_same_development_key() -> None:
    assert MediaSigner(None).verify(MediaSigner("").token(IMAGE_ID)) == IMAGE_ID
