"""The Dockerfile: every service installed, and the fonts the README's brands name."""

from __future__ import annotations

import re

from tests.deploy.manifests import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_every_workspace_member_is_copied_for_the_dependency_layer() -> None:
    members = sorted(p.parent.relative_to(ROOT) for p in ROOT.glob("*/*/pyproject.toml"))
    dependencies_layer = DOCKERFILE.split("--no-install-workspace", 1)[0]
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/" in dependencies_layer, member


def test_the_runtime_image_has_the_fonts_the_readme_names() -> None:
    # Given the font families the README's brands use
    readme = (ROOT / "README.md").read_text()
    families = set(re.findall(r'"heading": "([^"]+)"', readme))
    assert families == {"DejaVu Sans"}

    # I expect the runtime stage (after the last FROM) to install Debian's package of them
    runtime = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert "fonts-dejavu-core" in runtime
