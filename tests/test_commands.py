"""Typed command builders: payload shape and argument validation."""

from __future__ import annotations

import pytest

from gateway import commands


class TestRequestGuildMembers:
    def test_query(self) -> None:
        assert commands.request_guild_members(123, query="ab", limit=10, nonce="n1") == {
            "op": 8, "d": {"guild_id": "123", "query": "ab", "limit": 10, "presences": False, "nonce": "n1"},
        }

    def test_all_members_defaults_limit_zero(self) -> None:
        assert commands.request_guild_members("5", query="", presences=True)["d"] == {
            "guild_id": "5", "query": "", "limit": 0, "presences": True,
        }

    def test_user_ids_single_and_many(self) -> None:
        assert commands.request_guild_members(1, user_ids=7)["d"]["user_ids"] == ["7"]
        assert commands.request_guild_members(1, user_ids=[7, "8"])["d"]["user_ids"] == ["7", "8"]

    @pytest.mark.parametrize("kwargs", [{}, {"query": "a", "user_ids": [1]}])
    def test_query_xor_user_ids(self, kwargs: dict) -> None:
        with pytest.raises(ValueError, match="exactly one of query or user_ids"):
            commands.request_guild_members(1, **kwargs)

    def test_nonce_limit_is_in_bytes(self) -> None:
        assert commands.request_guild_members(1, query="", nonce="x" * 32)["d"]["nonce"] == "x" * 32
        with pytest.raises(ValueError, match="33 bytes"):
            commands.request_guild_members(1, query="", nonce="x" * 33)
        with pytest.raises(ValueError, match="at most 32"):
            commands.request_guild_members(1, query="", nonce="é" * 17)  # 34 bytes, 17 characters

    @pytest.mark.parametrize("kwargs, error", [
        ({"query": "", "limit": -1}, ValueError),
        ({"query": "", "limit": 1.5}, TypeError),
        ({"query": 5}, TypeError),
        ({"user_ids": [1], "limit": 3}, ValueError),
        ({"user_ids": []}, ValueError),
        ({"user_ids": list(range(101))}, ValueError),
        ({"user_ids": ["12a"]}, ValueError),
        ({"query": "", "presences": 1}, TypeError),
        ({"query": "", "nonce": 5}, TypeError),
    ])
    def test_bad_arguments(self, kwargs: dict, error: type[Exception]) -> None:
        with pytest.raises(error):
            commands.request_guild_members(1, **kwargs)


class TestPresence:
    def test_update_presence(self) -> None:
        payload = commands.update_presence("dnd", activities=[{"name": "chess", "type": 0}], afk=True, since=1000)
        assert payload == {"op": 3, "d": {"since": 1000, "activities": [{"name": "chess", "type": 0}],
                                         "status": "dnd", "afk": True}}

    @pytest.mark.parametrize("status", sorted(commands.PRESENCE_STATUSES))
    def test_every_status(self, status: str) -> None:
        assert commands.update_presence(status)["d"]["status"] == status

    def test_activity_type_defaults_to_playing(self) -> None:
        assert commands.presence(activities=[{"name": "x"}])["activities"] == [{"name": "x", "type": 0}]

    @pytest.mark.parametrize("kwargs, error", [
        ({"status": "away"}, ValueError),
        ({"status": 1}, TypeError),
        ({"activities": [{"type": 0}]}, TypeError),
        ({"activities": [{"name": "x", "type": 6}]}, ValueError),
        ({"activities": ["x"]}, TypeError),
        ({"activities": {"name": "x"}}, TypeError),
        ({"afk": "no"}, TypeError),
        ({"since": -5}, ValueError),
        ({"since": 1.5}, TypeError),
    ])
    def test_bad_arguments(self, kwargs: dict, error: type[Exception]) -> None:
        with pytest.raises(error):
            commands.update_presence(**kwargs)


def test_update_voice_state() -> None:
    assert commands.update_voice_state(1, 2, self_mute=True) == {
        "op": 4, "d": {"guild_id": "1", "channel_id": "2", "self_mute": True, "self_deaf": False}}
    assert commands.update_voice_state(1, None)["d"]["channel_id"] is None
    with pytest.raises(TypeError):
        commands.update_voice_state(1, 2, self_deaf=None)  # type: ignore[arg-type]


def test_request_soundboard_sounds() -> None:
    assert commands.request_soundboard_sounds([1, "2"]) == {"op": 31, "d": {"guild_ids": ["1", "2"]}}
    assert commands.request_soundboard_sounds(9)["d"]["guild_ids"] == ["9"]
    with pytest.raises(ValueError, match="must not be empty"):
        commands.request_soundboard_sounds([])


class TestRequestChannelInfo:
    def test_default_fields(self) -> None:
        assert commands.request_channel_info(1) == {
            "op": 43, "d": {"guild_id": "1", "fields": ["status", "voice_start_time"]}}

    def test_subset(self) -> None:
        assert commands.request_channel_info(1, ["voice_start_time"])["d"]["fields"] == ["voice_start_time"]

    @pytest.mark.parametrize("fields, error", [
        ([], ValueError), (["topic"], ValueError), ("status", TypeError), ([1], TypeError)])
    def test_bad_fields(self, fields: object, error: type[Exception]) -> None:
        with pytest.raises(error):
            commands.request_channel_info(1, fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("value, error", [
    (-1, ValueError), (2**64, ValueError), ("", ValueError), ("１２", ValueError), (True, TypeError), (1.0, TypeError)])
def test_snowflake_validation(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        commands.snowflake(value, "guild_id")


def test_snowflake_normalises_to_str() -> None:
    assert commands.snowflake(2**64 - 1) == str(2**64 - 1)
    assert commands.snowflake("0012") == "12"
