"""Post images: what the image worker renders and the API serves.

PIL-free (imported by the API, which does not install Pillow):

- `sizes`     the dimensions an image may have, and the platform presets
- `palette`   a brand's colours, and which text colour reads on a background
- `spec`      what to render (`ImageSpec`) and the `Renderer` protocol
- `signing`   the public media URL of an image: its id and an HMAC signature
- `storage`   where the bytes live: the `images` row, or a directory

Pillow (imported by the image worker service only):

- `fonts`       a brand's font names found as files, else Pillow's bundled font
- `cards`       the default renderer: an offline post card per style
- `provider`    an OpenAI-compatible images endpoint, fitted to the exact size
- `generation`  the `image.generate` job: render, store, record (idempotent per job)
"""
