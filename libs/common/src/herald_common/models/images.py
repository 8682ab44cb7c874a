"""Rendered post images."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from herald_common.models.base import id_field, timestamp


class Image(SQLModel, table=True):
    """One rendered image: its bytes in `data`, or in the image store at `storage_key`."""

    __tablename__ = "images"
    __table_args__ = (Index("ix_images_tenant_created", "tenant_id", "created_at", "id"),)

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)
    job_id: str | None = Field(default=None, max_length=36, unique=True)
    brand_id: str | None = Field(default=None, max_length=36)
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    style: str = Field(max_length=32)
    width: int
    height: int
    media_type: str = Field(default="image/png", max_length=64)
    size_bytes: int = Field(default=0)
    sha256: str = Field(max_length=64)
    renderer: str = Field(max_length=32)
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary), repr=False)
    storage_key: str | None = Field(default=None, max_length=500)
    created_at: datetime = timestamp(nullable=False, default_now=True)
