"""SQLite writers of one process queue on a lock per database file, not on SQLite's back-off."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from gpupool.service.db import make_engine, sqlite_write_lock


def _setup(path: Path) -> str:
    url = f"sqlite:///{path}"
    with make_engine(url).begin() as c:
        c.execute(text("CREATE TABLE t (v INTEGER)"))
    return url


def test_a_second_writer_waits_for_the_first_to_commit_then_goes_at_once(tmp_path: Path) -> None:
    url = _setup(tmp_path / "db.sqlite")
    a, b = make_engine(url), make_engine(url)
    done: list[float] = []

    def second() -> None:
        with b.begin() as c:
            c.execute(text("INSERT INTO t VALUES (2)"))
        done.append(time.monotonic())

    with a.begin() as c:
        c.execute(text("INSERT INTO t VALUES (1)"))
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        assert not done  # held off by the first writer's open transaction
        assert sqlite_write_lock(str(tmp_path / "db.sqlite")).locked()
        committed = time.monotonic()
    t.join(5)
    assert done and done[0] - committed < 0.05  # no sleep-and-retry once the lock is free
    with make_engine(url, writer=False).connect() as c:
        assert sorted(r[0] for r in c.execute(text("SELECT v FROM t"))) == [1, 2]


def test_a_failed_write_releases_the_lock_and_readers_never_take_it(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    url = _setup(path)
    engine = make_engine(url)
    with pytest.raises(RuntimeError), engine.begin() as c:
        c.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("the request failed half-way")
    assert not sqlite_write_lock(str(path)).locked()
    with make_engine(url, writer=False).connect() as c, c.begin():
        assert not sqlite_write_lock(str(path)).locked()
        assert c.execute(text("SELECT count(*) FROM t")).scalar() == 0  # rolled back
    with engine.begin() as c:  # and the next writer gets in
        c.execute(text("INSERT INTO t VALUES (3)"))
    assert not sqlite_write_lock(str(path)).locked()
