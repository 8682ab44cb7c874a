"""Fixtures for the deploy/ checks: each kustomize overlay, rendered once per session."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import OVERLAYS, Resource, render


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    """The name of each overlay under deploy/k8s/overlays."""
    return str(request.param)


@pytest.fixture(scope="session")
def resources(overlay: str) -> list[Resource]:
    """Every resource the overlay renders."""
    return render(overlay)
