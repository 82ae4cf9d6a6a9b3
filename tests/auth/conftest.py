"""Fixtures of the auth tests: services on a temporary metadata database, a clock the
tests move, and cheap argon2id parameters for unit tests (the end-to-end tests use the
real ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taphouse.auth.authenticator import Authenticator
from taphouse.auth.passwords import PasswordHashing
from taphouse.catalogue.store import CatalogueStore
from taphouse.metadata import MetadataDB
from taphouse.settings import Settings


class Clock:
    """A clock that only moves when told."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cheap_hashing() -> PasswordHashing:
    return PasswordHashing(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def meta(settings: Settings):
    db = MetadataDB(settings.meta_path)
    yield db
    db.close()


@pytest.fixture
def catalogue(meta: MetadataDB, settings: Settings) -> CatalogueStore:
    return CatalogueStore(meta, settings.tables_dir)


@pytest.fixture
def auth(meta: MetadataDB, settings: Settings, cheap_hashing: PasswordHashing,
         clock: Clock) -> Authenticator:
    return Authenticator(meta, settings, hashing=cheap_hashing, clock=clock)
