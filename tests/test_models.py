"""ShardId, Session, Latency and ShardStatus."""

from __future__ import annotations

import json

import pytest

from gateway.models import Latency, Session, ShardId, ShardStatus


class TestShardId:
    def test_parts_and_str(self) -> None:
        shard = ShardId(3, 8)
        assert (shard.number, shard.total) == (3, 8)
        assert str(shard) == "[3, 8]"
        assert repr(shard) == "ShardId(3, 8)"
        assert shard.to_list() == [3, 8]

    def test_equality_hash_order(self) -> None:
        assert ShardId(0, 2) == ShardId(0, 2)
        assert ShardId(0, 2) != ShardId(1, 2)
        assert len({ShardId(0, 2), ShardId(0, 2), ShardId(1, 2)}) == 2
        assert sorted([ShardId(1, 2), ShardId(0, 2)]) == [ShardId(0, 2), ShardId(1, 2)]

    def test_immutable(self) -> None:
        shard = ShardId(0, 1)
        with pytest.raises(AttributeError):
            shard._number = 5  # type: ignore[misc]
        with pytest.raises(AttributeError):
            shard.number = 5  # type: ignore[misc]

    @pytest.mark.parametrize("number, total", [(1.0, 2), ("0", 1), (0, "1"), (True, 2), (0, None)])
    def test_type_errors(self, number: object, total: object) -> None:
        with pytest.raises(TypeError, match="must be an int"):
            ShardId(number, total)  # type: ignore[arg-type]

    @pytest.mark.parametrize("number, total, message", [
        (0, 0, "total must be at least 1"),
        (-1, 2, r"number must be in \[0, 2\)"),
        (2, 2, r"number must be in \[0, 2\)"),
    ])
    def test_value_errors(self, number: int, total: int, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            ShardId(number, total)


class TestSession:
    def test_json_round_trip(self) -> None:
        session = Session("abc123", 42)
        text = session.to_json()
        assert json.loads(text) == {"id": "abc123", "sequence": 42}
        assert Session.from_json(text) == session
        assert Session.from_dict(session.to_dict()) == session

    def test_sequence_zero_is_valid(self) -> None:
        assert Session("x", 0).sequence == 0

    def test_with_sequence_is_a_new_object(self) -> None:
        session = Session("x", 1)
        moved = session.with_sequence(9)
        assert (session.sequence, moved.sequence, moved.id) == (1, 9, "x")

    @pytest.mark.parametrize("data, error", [
        ({"id": "x"}, ValueError),
        ({"sequence": 1}, ValueError),
        ({"id": 5, "sequence": 1}, TypeError),
        ({"id": "x", "sequence": "1"}, TypeError),
        ({"id": "x", "sequence": -1}, ValueError),
        ({"id": "", "sequence": 1}, ValueError),
        (["x", 1], TypeError),
    ])
    def test_bad_data(self, data: object, error: type[Exception]) -> None:
        with pytest.raises(error):
            Session.from_dict(data)  # type: ignore[arg-type]

    def test_immutable(self) -> None:
        with pytest.raises(AttributeError):
            Session("x", 1)._sequence = 2  # type: ignore[misc]


class TestLatency:
    def test_empty(self) -> None:
        latency = Latency()
        assert (latency.recent, latency.average, latency.periods, latency.sent, latency.received) == ((), None, 0, None, None)
        assert not latency.outstanding

    def test_round_trips_newest_first_at_most_five(self) -> None:
        latency = Latency()
        periods = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
        now = 0.0
        for period in periods:
            latency.record_sent(now)
            assert latency.outstanding and latency.received is None
            assert latency.record_received(now + period) == pytest.approx(period)
            assert latency.sent == now and latency.received == now + period
            now += 10
        assert latency.recent == pytest.approx((0.7, 0.6, 0.5, 0.4, 0.3))
        assert latency.periods == 7
        assert latency.average == pytest.approx(sum(periods) / 7)

    def test_ack_without_outstanding_heartbeat_is_ignored(self) -> None:
        latency = Latency()
        assert latency.record_received(1.0) is None
        latency.record_sent(2.0)
        latency.record_received(2.5)
        assert latency.record_received(3.0) is None
        assert latency.periods == 1

    def test_copy_is_independent(self) -> None:
        latency = Latency()
        latency.record_sent(0.0)
        snapshot = latency.copy()
        latency.record_received(1.0)
        assert snapshot.periods == 0 and snapshot.outstanding
        assert latency.periods == 1


def test_status_is_identified() -> None:
    assert {s for s in ShardStatus if s.is_identified} == {ShardStatus.ACTIVE, ShardStatus.RESUMING}
    assert [s.name for s in ShardStatus] == ["DISCONNECTED", "IDENTIFYING", "RESUMING", "ACTIVE", "FATALLY_CLOSED"]
