"""Type stub for the compiled envelope twin; mirrors ``gateway/_envelope_py.py``."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")

__all__ = ["scan_envelope", "EventFilter", "find_member", "Event"]

def scan_envelope(payload: bytes) -> tuple[int, int | None, str | None, int, int]: ...

def find_member(payload: bytes, start: int, end: int, key: str) -> tuple[int, int]: ...

class EventFilter:
    position: int
    sequence: int
    def __init__(self, wanted: int) -> None: ...
    @property
    def wanted(self) -> int: ...
    def scan(self, payload: bytes) -> tuple[int, int | None, str, int, int, bool]: ...
    def run(self, messages: list[tuple[int, bytes]], start: int, inflate: Callable[[bytes], bytes | None] | None,
            last_seq: int, deliver: Callable[[Event], object], shard_id: int | None) -> bytes | BaseException | None: ...

VIEW_THRESHOLD: int

class Event:
    name: str
    op: int
    seq: int | None
    raw: bytes
    shard_id: int | None
    def __init__(self, name: str, op: int, seq: int | None, payload: bytes, d_start: int, d_end: int,
                 shard_id: int | None = None) -> None: ...
    @classmethod
    def from_payload(cls, payload: bytes, shard_id: int | None = None) -> Event: ...
    @property
    def data(self) -> Any: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def decode(self, type: type[T]) -> T: ...
    @property
    def raw_data(self) -> bytes | None: ...
