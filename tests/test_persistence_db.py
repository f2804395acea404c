"""Database engines: SQLite tuned for concurrent use, PostgreSQL through psycopg 3."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from persistence.db import make_engine, normalize_url, ping, sqlite_file


def test_sqlite_engine_creates_its_directory_and_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'var' / 'flashsale.db'}")
    try:
        ping(db)
        with db.connect() as connection:
            pragmas = [
                connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("journal_mode", "foreign_keys")
            ]
            busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    finally:
        db.dispose()

    assert (tmp_path / "var").is_dir()
    assert pragmas == ["wal", 1]
    assert busy is not None
    assert busy >= 1000


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgresql_urls_use_psycopg_3(scheme: str) -> None:
    assert normalize_url(f"{scheme}://u@h/db").drivername == "postgresql+psycopg"


def test_ping_raises_when_the_database_does_not_answer() -> None:
    db = make_engine("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(sa.exc.OperationalError):
        ping(db)
    db.dispose()


def test_sqlite_file_is_none_for_memory_and_postgresql() -> None:
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("postgresql://h/flashsale") is None
    assert sqlite_file("sqlite:///var/flashsale.db") == Path("var/flashsale.db")
