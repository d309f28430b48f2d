"""gateway.sessions.FileSessionStore: round trip, merge semantics, clear, atomic writes, corrupt files."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import pytest

from gateway import FileSessionStore, SavedSession, Session, SessionStore

T = TypeVar("T")


def run(coroutine: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coroutine(), 15)

    return asyncio.run(bounded())


def saved(number: int, sequence: int = 10, resume_url: str | None = "wss://resume.example/") -> SavedSession:
    return SavedSession(Session(f"session-{number}", sequence), resume_url)


@pytest.fixture
def store(tmp_path: Path) -> FileSessionStore:
    return FileSessionStore(tmp_path / "sessions.json")


def test_is_a_session_store_and_round_trips(store: FileSessionStore) -> None:
    assert isinstance(store, SessionStore)
    sessions = {0: saved(0), 1: saved(1, 0, None), 3: saved(3, 2**53)}
    run(lambda: store.save(4, sessions))
    assert run(lambda: store.load(4)) == sessions
    assert run(lambda: FileSessionStore(store.path).load(4)) == sessions  # another instance, as after a restart
    assert repr(store) == f"FileSessionStore({str(store.path)!r})"


def test_missing_file_and_other_shard_count_load_nothing(store: FileSessionStore) -> None:
    assert run(lambda: store.load(1)) == {}
    run(lambda: store.save(4, {0: saved(0)}))
    assert run(lambda: store.load(8)) == {}
    assert run(lambda: store.load(4)) == {0: saved(0)}


def test_save_keeps_other_shards_under_the_same_count_and_drops_everything_on_another(store: FileSessionStore) -> None:
    run(lambda: store.save(4, {0: saved(0), 1: saved(1)}))
    run(lambda: store.save(4, {1: saved(1, 99), 2: saved(2)}))
    assert run(lambda: store.load(4)) == {0: saved(0), 1: saved(1, 99), 2: saved(2)}
    run(lambda: store.save(8, {5: saved(5)}))
    assert run(lambda: store.load(8)) == {5: saved(5)}
    assert run(lambda: store.load(4)) == {}


def test_clear_some_or_all(store: FileSessionStore) -> None:
    run(lambda: store.save(4, {0: saved(0), 1: saved(1), 2: saved(2)}))
    run(lambda: store.clear([1, 7]))
    assert run(lambda: store.load(4)) == {0: saved(0), 2: saved(2)}
    run(lambda: store.clear())
    assert not store.path.exists()
    assert run(lambda: store.load(4)) == {}
    run(lambda: store.clear())  # nothing to clear: no error
    run(lambda: store.clear([0]))


def test_file_is_mode_0600_and_holds_no_token(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        store = FileSessionStore(tmp_path / "s.json")
        run(lambda: store.save(2, {0: saved(0), 1: saved(1)}))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    document = json.loads(store.path.read_text())
    assert document == {
        "version": 1,
        "shard_count": 2,
        "sessions": {
            "0": {"id": "session-0", "sequence": 10, "resume_url": "wss://resume.example/"},
            "1": {"id": "session-1", "sequence": 10, "resume_url": "wss://resume.example/"},
        },
    }
    assert sorted(path.name for path in tmp_path.iterdir()) == ["s.json"]  # no temp file left behind


def test_a_crash_between_write_and_rename_leaves_the_old_file(store: FileSessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    run(lambda: store.save(4, {0: saved(0)}))
    before = store.path.read_bytes()

    def crash(src: Any, dst: Any) -> None:
        assert Path(src).read_bytes() != before  # the new content was fully written to the temp file
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        run(lambda: store.save(4, {1: saved(1)}))
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert run(lambda: store.load(4)) == {0: saved(0)}
    assert [path.name for path in store.path.parent.iterdir()] == [store.path.name]


def test_an_interrupted_temp_file_is_ignored_by_load(store: FileSessionStore) -> None:
    # what a process killed mid-write leaves: a half-written temp file next to the intact old one
    run(lambda: store.save(2, {0: saved(0)}))
    (store.path.parent / f".{store.path.name}.abc.tmp").write_text('{"version": 1, "shard_c')
    assert run(lambda: store.load(2)) == {0: saved(0)}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"version": 2, "shard_count": 2, "sessions": {}}',
        b'{"version": 1, "shard_count": "2", "sessions": {}}',
        b'{"version": 1, "shard_count": 2, "sessions": []}',
    ],
)
def test_corrupt_file_loads_nothing_with_a_warning_and_is_replaced_by_save(
    store: FileSessionStore, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store.path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="gateway.sessions"):
        assert run(lambda: store.load(2)) == {}
    assert caplog.records and "no sessions loaded" in caplog.text
    run(lambda: store.save(2, {1: saved(1)}))
    assert run(lambda: store.load(2)) == {1: saved(1)}


def test_malformed_entries_are_skipped_with_a_warning(store: FileSessionStore, caplog: pytest.LogCaptureFixture) -> None:
    good = saved(0).to_dict()
    document = {
        "version": 1,
        "shard_count": 3,
        "sessions": {
            "0": good,
            "1": {"id": "", "sequence": 1},
            "2": {"id": "x", "sequence": -1},
            "3": good,  # out of range for 3 shards
            "-1": good,
            "abc": good,
            "x1": "not an object",
        },
    }
    store.path.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING, logger="gateway.sessions"):
        assert run(lambda: store.load(3)) == {0: saved(0)}
    assert caplog.text.count("skipped a malformed entry") == 6


def test_programmer_errors_raise(store: FileSessionStore) -> None:
    with pytest.raises(TypeError):
        run(lambda: store.load("4"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        run(lambda: store.load(True))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        run(lambda: store.load(0))
    with pytest.raises(ValueError, match=r"shard id 4 is not in \[0, 4\)"):
        run(lambda: store.save(4, {4: saved(4)}))
    with pytest.raises(TypeError):
        run(lambda: store.save(4, {0: {"id": "x", "sequence": 1}}))  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        run(lambda: store.clear("0"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FileSessionStore(3)  # type: ignore[arg-type]
    assert not store.path.exists()  # nothing was written by the refused calls


def test_concurrent_saves_of_one_store_all_land(store: FileSessionStore) -> None:
    async def body() -> dict[int, SavedSession]:
        await asyncio.gather(*(store.save(16, {shard: saved(shard)}) for shard in range(16)))
        return await store.load(16)

    assert run(body) == {shard: saved(shard) for shard in range(16)}
