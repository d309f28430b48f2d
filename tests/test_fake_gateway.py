"""Tests of gateway.testing.FakeGateway, driven by a plain websockets client over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from typing import Any, Awaitable, Callable

import pytest
import zstandard
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.testing import FakeGateway, FakeSessionStartLimit

TOKEN = "secret-token"
QUERY = "/?v=10&encoding=json"


def run(test: Callable[[], Awaitable[None]], timeout: float = 15.0) -> None:
    """Run one async test body with a hard upper bound."""

    async def bounded() -> None:
        await asyncio.wait_for(test(), timeout)

    asyncio.run(bounded())


class Client:
    """A minimal gateway client: websockets plus the matching decompressor."""

    def __init__(self, websocket: ClientConnection, compression: str | None) -> None:
        self.websocket = websocket
        self.compression = compression
        self.messages: list[bytes | str] = []  # raw websocket messages, for framing assertions
        self._zlib = zlib.decompressobj()
        self._zlib_buffer = bytearray()
        self._zstd = zstandard.ZstdDecompressor().decompressobj()

    @classmethod
    async def open(cls, url: str, compression: str | None = None, query: str = QUERY) -> Client:
        full = url + query + (f"&compress={compression}" if compression else "")
        websocket = await connect(full, compression=None, max_size=None, open_timeout=5, close_timeout=2)
        return cls(websocket, compression)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """Next gateway payload, decompressed and decoded."""
        while True:
            message = await asyncio.wait_for(self.websocket.recv(), timeout)
            self.messages.append(message)
            if self.compression is None:
                assert isinstance(message, str), "uncompressed payloads are text messages"
                return json.loads(message)
            assert isinstance(message, bytes), "compressed payloads are binary messages"
            if self.compression == "zlib-stream":
                self._zlib_buffer += message
                if not self._zlib_buffer.endswith(b"\x00\x00\xff\xff"):
                    continue
                text = self._zlib.decompress(bytes(self._zlib_buffer))
                self._zlib_buffer.clear()
                return json.loads(text)
            try:
                text = self._zstd.decompress(message)
            except zstandard.ZstdError:
                raise
            if self._zstd.eof:  # a frame ended: the next message starts a new one
                self._zstd = zstandard.ZstdDecompressor().decompressobj()
            return json.loads(text)

    async def send(self, payload: dict[str, Any]) -> None:
        await self.websocket.send(json.dumps(payload))

    async def identify(self, token: str = TOKEN, intents: int = 513, **extra: Any) -> dict[str, Any]:
        await self.send({"op": 2, "d": {"token": token, "intents": intents, "properties": {"os": "linux"}, **extra}})
        return await self.recv()

    async def closed_code(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to end the connection; the close code it sent (None: no close frame)."""
        try:
            while True:
                await asyncio.wait_for(self.websocket.recv(), timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


async def hello_and_ready(gw: FakeGateway, compression: str | None = None) -> tuple[Client, dict[str, Any]]:
    client = await Client.open(gw.url, compression)
    hello = await client.recv()
    assert hello["op"] == 10
    ready = await client.identify()
    return client, ready


def test_hello_identify_ready_and_heartbeat_ack() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, heartbeat_interval=1234, guilds=[{"id": "81384788765712384", "name": "g"}]) as gw:
            client = await Client.open(gw.url)
            hello = await client.recv()
            assert hello["op"] == 10 and hello["d"] == {"heartbeat_interval": 1234}
            assert hello["s"] is None and hello["t"] is None

            await client.send({"op": 1, "d": None})
            assert (await client.recv())["op"] == 11

            ready = await client.identify(shard=[0, 1])
            assert ready["op"] == 0 and ready["t"] == "READY" and ready["s"] == 1
            assert ready["d"]["resume_gateway_url"] == gw.url + "/resume"
            assert ready["d"]["shard"] == [0, 1] and ready["d"]["v"] == 10
            assert ready["d"]["guilds"] == [{"id": "81384788765712384", "unavailable": True}]
            session_id = ready["d"]["session_id"]
            guild_create = await client.recv()
            assert guild_create["t"] == "GUILD_CREATE" and guild_create["s"] == 2
            assert guild_create["d"]["name"] == "g"

            identify = await gw.wait_for_op(2)
            assert identify["d"]["token"] == TOKEN
            assert gw.session is not None and gw.session.id == session_id
            await client.send({"op": 1, "d": 2})
            assert (await client.recv())["op"] == 11
            assert (await gw.wait_for_op(1))["d"] is None
            assert (await gw.wait_for_op(1))["d"] == 2
            connection = gw.connections[0]
            assert connection.heartbeats == [None, 2] and connection.query == {"v": "10", "encoding": "json"}
            assert [entry.op for entry in gw.received] == [1, 2, 1]
            await client.websocket.close()

    run(body)


def test_bot_prefix_accepted_and_first_seq_zero() -> None:
    async def body() -> None:
        async with FakeGateway(token="Bot " + TOKEN, first_seq=0) as gw:
            client = await Client.open(gw.url)
            await client.recv()
            ready = await client.identify(token=TOKEN)
            assert ready["t"] == "READY" and ready["s"] == 0
            assert await gw.dispatch("MESSAGE_CREATE", {"id": "1"}) == 1
            assert (await client.recv())["s"] == 1
            await client.websocket.close()

    run(body)


def test_dispatch_sequences_increase_by_one() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, ready = await hello_and_ready(gw)
            seqs = [await gw.dispatch("MESSAGE_CREATE", {"n": n}) for n in range(5)]
            assert seqs == [2, 3, 4, 5, 6]
            received = [await client.recv() for _ in range(5)]
            assert [(p["t"], p["s"], p["d"]["n"]) for p in received] == [("MESSAGE_CREATE", s, n) for n, s in enumerate(seqs)]
            await client.websocket.close()

    run(body)


def test_resume_replays_missed_dispatches_then_resumed() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, ready = await hello_and_ready(gw)
            session_id = ready["d"]["session_id"]
            first = await gw.dispatch("MESSAGE_CREATE", {"n": 1})
            assert (await client.recv())["s"] == first
            await client.websocket.close(4000)  # not 1000/1001: the session survives
            await gw.connections[0].wait_closed()
            assert gw.connections[0].closed_by == "client" and gw.connections[0].close_code == 4000
            missed = [gw.dispatch_nowait("MESSAGE_CREATE", {"n": n}) for n in (2, 3)]

            resumed = await Client.open(ready["d"]["resume_gateway_url"])
            assert (await resumed.recv())["op"] == 10
            await resumed.send({"op": 6, "d": {"token": TOKEN, "session_id": session_id, "seq": first}})
            replay = [await resumed.recv() for _ in range(2)]
            assert [(p["s"], p["d"]["n"]) for p in replay] == [(missed[0], 2), (missed[1], 3)]
            resumed_event = await resumed.recv()
            assert resumed_event["t"] == "RESUMED" and resumed_event["s"] == missed[1] + 1
            assert gw.connections[1].used_resume_url and gw.connections[1].path == "/resume"
            assert not gw.connections[0].used_resume_url
            live = await gw.dispatch("MESSAGE_CREATE", {"n": 4})
            assert (await resumed.recv())["s"] == live == resumed_event["s"] + 1
            await resumed.websocket.close()

    run(body)


def test_resume_failures() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, ready = await hello_and_ready(gw)
            session_id = ready["d"]["session_id"]
            await client.websocket.close(1000)  # 1000 ends the session
            await gw.connections[0].wait_closed()
            assert gw.sessions[session_id].invalidated and gw.session is None

            stale = await Client.open(gw.url)
            await stale.recv()
            await stale.send({"op": 6, "d": {"token": TOKEN, "session_id": session_id, "seq": 1}})
            assert await stale.recv() == {"t": None, "s": None, "op": 9, "d": False}
            await stale.websocket.close(4000)

            other, other_ready = await hello_and_ready(gw)
            await other.websocket.close(4000)
            ahead = await Client.open(gw.url)
            await ahead.recv()
            await ahead.send({"op": 6, "d": {"token": TOKEN, "session_id": other_ready["d"]["session_id"], "seq": 99}})
            assert await ahead.closed_code() == 4007
            assert gw.sessions[other_ready["d"]["session_id"]].invalidated

    run(body)


def test_drop_keeps_session_and_client_sees_no_close_frame() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, ready = await hello_and_ready(gw)
            assert await gw.drop()
            assert await client.closed_code() is None
            closed_by, code = await gw.connections[0].wait_closed()
            assert (closed_by, code) == ("server", None)
            assert gw.session is not None and gw.session.connection is None
            seq = await gw.dispatch("MESSAGE_CREATE", {"while": "away"})

            again = await Client.open(gw.resume_gateway_url)
            await again.recv()
            await again.send({"op": 6, "d": {"token": TOKEN, "session_id": ready["d"]["session_id"], "seq": 1}})
            replayed = await again.recv()
            assert replayed["s"] == seq and replayed["d"] == {"while": "away"}
            assert (await again.recv())["t"] == "RESUMED"
            await again.websocket.close()

    run(body)


def test_reconnect_invalidate_request_heartbeat_and_close() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, minimal_envelopes=True) as gw:
            client, _ = await hello_and_ready(gw)
            await gw.request_heartbeat()
            assert await client.recv() == {"op": 1, "d": 1}
            await gw.reconnect()
            assert await client.recv() == {"op": 7}
            await gw.invalidate_session(True)
            assert await client.recv() == {"op": 9, "d": True}
            assert gw.session is not None
            await gw.invalidate_session(False)
            assert await client.recv() == {"op": 9, "d": False}
            assert gw.session is None
            assert await gw.close(4321, "bye")
            assert await client.closed_code() == 4321
            assert await gw.connections[0].wait_closed() == ("server", 4321)

    run(body)


def test_hello_modes() -> None:
    async def body() -> None:
        async with FakeGateway(hello="reconnect") as gw:
            client = await Client.open(gw.url)
            assert (await client.recv())["op"] == 7
            gw.hello = "none"
            await client.websocket.close(4000)
            silent = await Client.open(gw.url)
            with pytest.raises(asyncio.TimeoutError):
                await silent.recv(timeout=0.2)
            await silent.websocket.close()

            gw.close_on_connect = 4000
            rejected = await Client.open(gw.url)
            assert await rejected.closed_code() == 4000
            gw.close_on_connect = "drop"
            dropped = await Client.open(gw.url)
            assert await dropped.closed_code() is None

    run(body)


@pytest.mark.parametrize(
    ("identify", "code"),
    [
        ({"token": "wrong", "intents": 1}, 4004),
        ({"token": TOKEN}, 4013),
        ({"token": TOKEN, "intents": 1 << 17}, 4013),
        ({"token": TOKEN, "intents": 1, "shard": [1, 1]}, 4010),
        ({"token": TOKEN, "intents": 1, "shard": [0]}, 4010),
        ("not an object", 4001),
    ],
)
def test_identify_validation_close_codes(identify: Any, code: int) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client = await Client.open(gw.url)
            await client.recv()
            await client.send({"op": 2, "d": identify})
            assert await client.closed_code() == code
            assert await gw.connections[0].wait_closed() == ("server", code)

    run(body)


def test_disallowed_intents_close_4014() -> None:
    async def body() -> None:
        async with FakeGateway(disallowed_intents=2) as gw:
            client = await Client.open(gw.url)
            await client.recv()
            await client.send({"op": 2, "d": {"token": "any", "intents": 3}})
            assert await client.closed_code() == 4014

    run(body)


def test_second_identify_and_payload_before_identify() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, _ = await hello_and_ready(gw)
            await client.send({"op": 2, "d": {"token": TOKEN, "intents": 1}})
            assert await client.closed_code() == 4005

            early = await Client.open(gw.url)
            await early.recv()
            await early.send({"op": 3, "d": {"status": "online", "since": None, "activities": [], "afk": False}})
            assert await early.closed_code() == 4003

    run(body)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", 4002),
        ("[1, 2]", 4002),
        (json.dumps({"op": 5, "d": None}), 4001),
        (json.dumps({"op": 1, "d": "x" * 5000}), 4002),
    ],
)
def test_bad_payload_close_codes(message: str, code: int) -> None:
    async def body() -> None:
        async with FakeGateway() as gw:
            client = await Client.open(gw.url)
            await client.recv()
            await client.websocket.send(message)
            assert await client.closed_code() == code
            assert gw.received[0].raw == message.encode()

    run(body)


def test_payload_of_exactly_4096_bytes_is_accepted() -> None:
    async def body() -> None:
        async with FakeGateway() as gw:
            client = await Client.open(gw.url)
            await client.recv()
            base = json.dumps({"op": 1, "d": None, "pad": ""})
            await client.websocket.send(json.dumps({"op": 1, "d": None, "pad": "x" * (4096 - len(base))}))
            assert (await client.recv())["op"] == 11
            assert len(gw.received[0].raw) == 4096

    run(body)


def test_rate_limit_closes_4008_on_the_121st_payload() -> None:
    async def body() -> None:
        async with FakeGateway() as gw:
            client = await Client.open(gw.url)
            await client.recv()
            for _ in range(121):
                await client.send({"op": 1, "d": None})
            acks = 0
            try:
                while True:
                    payload = await client.recv()
                    assert payload["op"] == 11
                    acks += 1
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4008
            assert acks == 120
            assert len(gw.received) == 121

    run(body)


def test_rate_limit_window_slides() -> None:
    async def body() -> None:
        async with FakeGateway(rate_limit=(3, 0.2)) as gw:
            client = await Client.open(gw.url)
            await client.recv()
            for _ in range(3):
                await client.send({"op": 1, "d": None})
                await client.recv()
            await asyncio.sleep(0.25)
            await client.send({"op": 1, "d": None})
            assert (await client.recv())["op"] == 11
            for _ in range(3):
                await client.send({"op": 1, "d": None})
            assert await client.closed_code() == 4008

    run(body)


def test_stop_acking_heartbeats() -> None:
    async def body() -> None:
        async with FakeGateway() as gw:
            client = await Client.open(gw.url)
            await client.recv()
            gw.ack_heartbeats = False
            await client.send({"op": 1, "d": None})
            await gw.wait_for_op(1)
            with pytest.raises(asyncio.TimeoutError):
                await client.recv(timeout=0.2)
            gw.ack_heartbeats = True
            await client.send({"op": 1, "d": None})
            assert (await client.recv())["op"] == 11
            await client.websocket.close()

    run(body)


def test_zlib_stream_shared_context_and_split_messages() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, ready = await hello_and_ready(gw, "zlib-stream")
            assert ready["t"] == "READY"
            assert all(isinstance(m, bytes) and m.endswith(b"\x00\x00\xff\xff") for m in client.messages)
            gw.split_next(parts=3)
            seq = await gw.dispatch("MESSAGE_CREATE", {"content": "split " * 50})
            before = len(client.messages)
            payload = await client.recv()
            pieces = client.messages[before:]
            assert payload["s"] == seq and payload["d"]["content"] == "split " * 50
            assert len(pieces) == 3
            assert [piece.endswith(b"\x00\x00\xff\xff") for piece in pieces] == [False, False, True]
            # The context is shared: a repeated payload compresses to fewer bytes the second time.
            await gw.dispatch("MESSAGE_CREATE", {"content": "repeat " * 40})
            await gw.dispatch("MESSAGE_CREATE", {"content": "repeat " * 40})
            await client.recv()
            await client.recv()
            assert len(client.messages[-1]) < len(client.messages[-2])
            # A single, independent zlib stream could not decode the later messages.
            with pytest.raises(zlib.error):
                zlib.decompressobj().decompress(client.messages[-1])
            await client.websocket.close()

    run(body)


def test_zstd_stream_one_message_per_payload_without_ending_frames() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, ready = await hello_and_ready(gw, "zstd-stream")
            assert ready["t"] == "READY"
            for n in range(3):
                await gw.dispatch("MESSAGE_CREATE", {"n": n})
            assert [(await client.recv())["d"]["n"] for _ in range(3)] == [0, 1, 2]
            assert not client._zstd.eof  # still inside the connection's single frame
            gw.split_next(parts=3)  # ignored for zstd: one websocket message is one payload
            before = len(client.messages)
            await gw.dispatch("MESSAGE_CREATE", {"n": 3})
            assert (await client.recv())["d"]["n"] == 3 and len(client.messages) == before + 1
            await client.websocket.close()

    run(body)


def test_zstd_end_frames_option_ends_a_frame_per_message() -> None:
    async def body() -> None:
        async with FakeGateway(zstd_end_frames=True) as gw:
            client = await Client.open(gw.url, "zstd-stream")
            await client.recv()
            hello_message = client.messages[0]
            assert isinstance(hello_message, bytes)
            assert json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(hello_message))["op"] == 10
            await client.send({"op": 1, "d": None})
            ack_message_payload = await client.recv()
            assert ack_message_payload["op"] == 11
            assert json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(client.messages[1]))["op"] == 11
            await client.websocket.close()

    run(body)


def test_corrupt_and_raw_payloads() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, _ = await hello_and_ready(gw, "zlib-stream")
            await gw.send_raw("{invalid json")
            with pytest.raises(json.JSONDecodeError):
                await client.recv()
            await gw.send_corrupt()
            with pytest.raises(zlib.error):
                await client.recv()
            await client.websocket.close()

            zstd_client, _ = await hello_and_ready(gw, "zstd-stream")
            await gw.send_corrupt()
            with pytest.raises(zstandard.ZstdError):
                await zstd_client.recv()
            await zstd_client.websocket.close()

            plain, _ = await hello_and_ready(gw)
            await gw.send_raw(b"\x01\x02", compress=False)
            assert await asyncio.wait_for(plain.websocket.recv(), 5) == b"\x01\x02"
            await gw.send({"op": 11})
            assert await plain.recv() == {"op": 11}
            await plain.websocket.close()

    run(body)


def test_bad_query_parameters() -> None:
    async def body() -> None:
        async with FakeGateway() as gw:
            wrong_version = await Client.open(gw.url, query="/?v=6&encoding=json")
            assert await wrong_version.closed_code() == 4012
            etf = await Client.open(gw.url, query="/?v=10&encoding=etf")
            assert await etf.closed_code() == 4002
            bad_compress = await Client.open(gw.url, query="/?v=10&encoding=json&compress=lz4")
            assert await bad_compress.closed_code() == 4002

    run(body)


def test_commands_get_their_dispatches() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            guild = "81384788765712384"
            gw.guild_members[guild] = [{"user": {"id": str(i), "username": f"user{i}"}} for i in range(1500)]
            gw.soundboard_sounds[guild] = [{"sound_id": "5", "name": "boop"}]
            gw.channel_info[guild] = [{"id": "9", "status": "live", "voice_start_time": 17, "name": "x"}]
            client, _ = await hello_and_ready(gw)

            await client.send({"op": 8, "d": {"guild_id": guild, "query": "", "limit": 0, "nonce": "abc"}})
            chunks = [await client.recv() for _ in range(2)]
            assert [c["d"]["chunk_index"] for c in chunks] == [0, 1]
            assert {c["d"]["chunk_count"] for c in chunks} == {2} and {c["d"]["nonce"] for c in chunks} == {"abc"}
            assert sum(len(c["d"]["members"]) for c in chunks) == 1500
            await client.send({"op": 8, "d": {"guild_id": guild, "query": "", "limit": 0, "nonce": "again"}})
            limited = await client.recv()
            assert limited["t"] == "RATE_LIMITED" and limited["d"]["opcode"] == 8
            assert limited["d"]["meta"] == {"guild_id": guild, "nonce": "again"}
            await client.send({"op": 8, "d": {"guild_id": guild, "user_ids": ["3", "99999"]}})
            by_id = await client.recv()
            assert [m["user"]["id"] for m in by_id["d"]["members"]] == ["3"] and by_id["d"]["not_found"] == ["99999"]
            await client.send({"op": 8, "d": {"guild_id": guild, "query": "user14", "limit": 5}})
            assert len((await client.recv())["d"]["members"]) == 5

            await client.send({"op": 31, "d": {"guild_ids": [guild, "2"]}})
            sounds = [await client.recv() for _ in range(2)]
            assert [(s["t"], s["d"]["guild_id"], len(s["d"]["soundboard_sounds"])) for s in sounds] == [
                ("SOUNDBOARD_SOUNDS", guild, 1),
                ("SOUNDBOARD_SOUNDS", "2", 0),
            ]
            await client.send({"op": 43, "d": {"guild_id": guild, "fields": ["status"]}})
            info = await client.recv()
            assert info["t"] == "CHANNEL_INFO" and info["d"]["channels"] == [{"id": "9", "status": "live"}]

            await client.send({"op": 4, "d": {"guild_id": guild, "channel_id": "7", "self_mute": True, "self_deaf": False}})
            state, server = await client.recv(), await client.recv()
            assert state["t"] == "VOICE_STATE_UPDATE" and state["d"]["channel_id"] == "7" and state["d"]["self_mute"]
            assert server["t"] == "VOICE_SERVER_UPDATE" and server["d"]["guild_id"] == guild and server["d"]["token"]
            assert server["s"] == state["s"] + 1
            await client.send({"op": 3, "d": {"since": None, "activities": [], "status": "idle", "afk": False}})
            assert (await gw.wait_for_op(3))["d"]["status"] == "idle"
            await client.websocket.close()

    run(body)


def test_max_concurrency_answers_op9_within_five_seconds() -> None:
    async def body() -> None:
        async with FakeGateway(max_concurrency=1) as gw:
            first, _ = await hello_and_ready(gw)
            second = await Client.open(gw.url)
            await second.recv()
            assert (await second.identify())["op"] == 9
            await first.websocket.close()
            await second.websocket.close()

    run(body)


def test_waits_time_out_and_cursor_semantics() -> None:
    async def body() -> None:
        async with FakeGateway() as gw:
            with pytest.raises(TimeoutError):
                await gw.wait_for_connection(timeout=0.05)
            client = await Client.open(gw.url)
            await client.recv()
            assert (await gw.wait_for_connection()).number == 1
            with pytest.raises(TimeoutError):
                await gw.wait_for_connection(timeout=0.05)
            with pytest.raises(TimeoutError):
                await gw.wait_for_op(2, timeout=0.05)
            with pytest.raises(RuntimeError):
                gw.dispatch_nowait("MESSAGE_CREATE", {})
            await client.send({"op": 1, "d": None})
            await client.send({"op": 1, "d": 7})
            assert (await gw.wait_for_op(1))["d"] is None
            assert (await gw.wait_for_op(1))["d"] == 7
            assert await gw.wait_for(lambda g: len(g.received) == 2)
            await client.websocket.close()

    run(body)


def test_exit_closes_open_connections_and_token_stays_out_of_repr() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, _ = await hello_and_ready(gw)
            url = gw.url
            assert TOKEN not in repr(gw) and TOKEN not in repr(gw.connections[0]) and TOKEN not in repr(gw.session)
        assert await client.closed_code() == 1001
        with pytest.raises(OSError):
            await connect(url + QUERY, open_timeout=2)

    run(body)


def test_broadcast_routes_by_shard_and_intents() -> None:
    async def body() -> None:
        guild_on_shard_1 = str((5 << 22) | 123)  # (id >> 22) % 2 == 1
        async with FakeGateway(guilds=[{"id": guild_on_shard_1}]) as gw:
            shard0 = await Client.open(gw.url)
            await shard0.recv()
            ready0 = await shard0.identify(intents=1, shard=[0, 2])
            assert ready0["d"]["guilds"] == []
            shard1 = await Client.open(gw.url)
            await shard1.recv()
            ready1 = await shard1.identify(intents=1 | 512, shard=[1, 2])
            assert ready1["d"]["guilds"] == [{"id": guild_on_shard_1, "unavailable": True}]
            assert (await shard1.recv())["t"] == "GUILD_CREATE"
            id0, id1 = ready0["d"]["session_id"], ready1["d"]["session_id"]

            assert set(gw.broadcast("CHANNEL_CREATE", {"guild_id": guild_on_shard_1})) == {id1}
            assert set(gw.broadcast("MESSAGE_CREATE", {"channel_id": "5"})) == set()  # DM-like: shard 0, needs intent
            assert set(gw.broadcast("INTERACTION_CREATE", {"id": "1"})) == {id0}  # no guild, no intent: shard 0
            assert set(gw.broadcast("MESSAGE_CREATE", {"guild_id": guild_on_shard_1})) == {id1}
            assert [(await shard1.recv())["t"] for _ in range(2)] == ["CHANNEL_CREATE", "MESSAGE_CREATE"]
            assert (await shard0.recv())["t"] == "INTERACTION_CREATE"
            await shard0.websocket.close()
            await shard1.websocket.close()

    run(body)


def test_heartbeat_grace_closes_a_silent_connection_but_keeps_the_session() -> None:
    async def body() -> None:
        async with FakeGateway(heartbeat_interval=200, heartbeat_grace=0.1) as gw:
            client, ready = await hello_and_ready(gw)
            for _ in range(3):  # heartbeats in time keep it open
                await asyncio.sleep(0.06)
                await client.send({"op": 1, "d": 1})
                assert (await client.recv())["op"] == 11
            assert await client.closed_code(timeout=2) == 4000
            assert gw.session is not None and gw.session.id == ready["d"]["session_id"]

    run(body)


def test_wait_for_session_and_sent_log() -> None:
    async def body() -> None:
        async with FakeGateway() as gw:
            with pytest.raises(TimeoutError):
                await gw.wait_for_session(timeout=0.05)
            client, ready = await hello_and_ready(gw)
            session = await gw.wait_for_session()
            assert session.id == ready["d"]["session_id"] and session.connection is gw.connections[0]
            assert [json.loads(sent)["op"] for sent in gw.connections[0].sent] == [10, 0]
            await client.websocket.close()

    run(body)


@pytest.mark.parametrize("compression", [None, "zlib-stream", "zstd-stream"])
def test_fragment_next_sends_one_message_in_several_frames(compression: str | None) -> None:
    async def body() -> None:
        async with FakeGateway() as gw:
            client, _ = await hello_and_ready(gw, compression)
            gw.fragment_next(frames=3)
            seq = await gw.dispatch("MESSAGE_CREATE", {"content": "fragmented " * 30})
            fragments = []
            async for fragment in client.websocket.recv_streaming():
                fragments.append(fragment)
            # websockets ends a fragmented message with an empty FIN continuation frame
            assert len(fragments) == 4 and all(fragments[:3]) and not fragments[3]
            joined = "".join(fragments) if compression is None else b"".join(fragments)
            if compression is None:
                payload = json.loads(joined)
            elif compression == "zlib-stream":
                payload = json.loads(client._zlib.decompress(joined))
            else:
                payload = json.loads(client._zstd.decompress(joined))
            assert payload["s"] == seq and payload["d"]["content"] == "fragmented " * 30
            await client.websocket.close()

    run(body)


# ------------------------------------------------------------------------------- many shards, HTTP, limits


async def open_shard(gw: FakeGateway, shard: list[int] | None, token: str = TOKEN) -> tuple[Client, Any]:
    """Connect, read HELLO, IDENTIFY as ``shard``; returns the client and the first answer (READY or op 9; None
    when the server closed instead: ``client.closed_code()`` then gives the code)."""
    client = await Client.open(gw.url)
    assert (await client.recv())["op"] == 10
    extra = {"shard": shard} if shard is not None else {}
    try:
        return client, await client.identify(token=token, **extra)
    except ConnectionClosed:
        return client, None


def test_gateway_bot_over_http_on_the_same_port() -> None:
    from gateway import fetch_gateway_info

    async def body() -> None:
        limit = FakeSessionStartLimit(total=1000, remaining=990, reset_after=3600.0)
        async with FakeGateway(token=TOKEN, recommended_shards=4, max_concurrency=16, session_start_limit=limit) as gw:
            assert gw.api_url == f"http://127.0.0.1:{gw.port}/api/v10"
            info = await fetch_gateway_info(TOKEN, api_url=gw.api_url)
            assert info.url == gw.url and info.shards == 4
            assert info.session_start_limit.total == 1000 and info.session_start_limit.remaining == 990
            assert info.session_start_limit.max_concurrency == 16
            assert 3590 < info.session_start_limit.reset_after <= 3600
            gw.recommended_shards = 8
            gw.max_concurrency = None  # not enforced: reported as 1
            info = await fetch_gateway_info("Bot " + TOKEN, api_url=gw.api_url)
            assert info.shards == 8 and info.session_start_limit.max_concurrency == 1
            request = gw.http_requests[0]
            assert request.path == "/api/v10/gateway/bot" and request.status == 200
            assert request.headers["authorization"] == "Bot <redacted>"
            assert request.headers["user-agent"].startswith("DiscordBot (")
            assert TOKEN not in repr(gw.http_requests)
            assert gw.connections == []  # HTTP requests are not websocket connections

    run(body)


def test_http_401_for_a_missing_or_wrong_authorization() -> None:
    from gateway import AuthenticationError, fetch_gateway_info

    async def raw_get(gw: FakeGateway, headers: str) -> bytes:
        reader, writer = await asyncio.open_connection(gw.host, gw.port)
        writer.write(f"GET /api/v10/gateway/bot HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        return answer

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            with pytest.raises(AuthenticationError) as excinfo:
                await fetch_gateway_info("wrong-token", api_url=gw.api_url)
            assert excinfo.value.attempts == 1 and len(gw.http_requests) == 1  # no retry loop
            assert (await raw_get(gw, "")).startswith(b"HTTP/1.1 401")
            assert (await raw_get(gw, f"Authorization: {TOKEN}\r\n")).startswith(b"HTTP/1.1 401")  # no "Bot "
            assert gw.http_requests[-1].headers["authorization"] == "<redacted>"
            assert [r.status for r in gw.http_requests] == [401, 401, 401]
            gw.fail_http(401)
            with pytest.raises(AuthenticationError):
                await fetch_gateway_info(TOKEN, api_url=gw.api_url)
            assert (await raw_get(gw, "")).count(b"404") == 0  # /gateway/bot exists
        async with FakeGateway(token=None) as gw:  # any token, but still "Bot <something>"
            await fetch_gateway_info("anything", api_url=gw.api_url)
            assert (await raw_get(gw, "Authorization: Bot \r\n")).startswith(b"HTTP/1.1 401")

    run(body)


def test_http_429_and_500_modes_are_retried_by_fetch_gateway_info() -> None:
    from gateway.errors import HTTPError
    from gateway.http import RetryPolicy, fetch_gateway_info

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            gw.fail_http(429, 2, retry_after=0.05)
            gw.fail_http(500)
            await fetch_gateway_info(TOKEN, api_url=gw.api_url, retry=RetryPolicy(base_delay=0.01))
            assert [r.status for r in gw.http_requests] == [429, 429, 500, 200]
            waits = [b.at - a.at for a, b in zip(gw.http_requests, gw.http_requests[1:2])]
            assert waits[0] >= 0.05  # retry_after was honoured
            gw.fail_http(503, 5)
            with pytest.raises(HTTPError) as excinfo:
                await fetch_gateway_info(TOKEN, api_url=gw.api_url, retry=RetryPolicy(max_attempts=3, base_delay=0.01))
            assert excinfo.value.status == 503 and excinfo.value.attempts == 3
            assert len(gw.http_failures) == 2
            with pytest.raises(ValueError):
                gw.fail_http(200)

    run(body)


def test_every_accepted_identify_spends_a_session_start_and_the_window_resets() -> None:
    from gateway.http import fetch_gateway_info

    async def body() -> None:
        limit = FakeSessionStartLimit(total=5, remaining=3, reset_after=0.6)
        async with FakeGateway(token=TOKEN, session_start_limit=limit) as gw:
            a, ready_a = await open_shard(gw, [0, 2])
            b, ready_b = await open_shard(gw, [1, 2])
            assert ready_a["t"] == ready_b["t"] == "READY"
            wrong, _ = await open_shard(gw, [0, 2], token="wrong")  # refused: not a session start
            assert await wrong.closed_code() == 4004
            assert gw.session_start_limit.remaining == 1
            info = await fetch_gateway_info(TOKEN, api_url=gw.api_url)
            assert info.session_start_limit.remaining == 1 and info.session_start_limit.total == 5
            assert 0 < info.session_start_limit.reset_after <= 0.6
            await asyncio.sleep(0.65)
            info = await fetch_gateway_info(TOKEN, api_url=gw.api_url)
            assert info.session_start_limit.remaining == 5 and info.session_start_limit.reset_after > 0.5
            for client in (a, b):
                await client.websocket.close()

    run(body)


def test_identify_with_no_session_start_left_terminates_every_session_and_resets_the_token() -> None:
    from gateway import AuthenticationError
    from gateway.http import fetch_gateway_info

    async def body() -> None:
        limit = FakeSessionStartLimit(total=1000, remaining=1)
        async with FakeGateway(token=TOKEN, session_start_limit=limit) as gw:
            first, ready = await open_shard(gw, [0, 2])
            second = await Client.open(gw.url)
            await second.recv()
            await second.send({"op": 2, "d": {"token": TOKEN, "intents": 1, "properties": {}, "shard": [1, 2]}})
            assert await second.closed_code() == 4004
            assert await first.closed_code() == 4004
            violation = gw.identify_violations[-1]
            assert violation.kind == "session_start_limit" and violation.shard == (1, 2) and violation.bucket == 0
            assert gw.token_reset and gw.sessions[ready["d"]["session_id"]].invalidated
            resumer = await Client.open(gw.url)
            await resumer.recv()
            await resumer.send({"op": 6, "d": {"token": TOKEN, "session_id": ready["d"]["session_id"], "seq": 1}})
            assert await resumer.closed_code() == 4004
            with pytest.raises(AuthenticationError):
                await fetch_gateway_info(TOKEN, api_url=gw.api_url)
            gw.token_reset = False
            gw.reset_session_start_limit()
            again, ready = await open_shard(gw, [1, 2])
            assert ready["t"] == "READY" and gw.session_start_limit.remaining == 999
            await again.websocket.close()

    run(body)


def test_identify_concurrency_is_per_bucket_and_violations_are_recorded() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, max_concurrency=2, identify_delay=0.4) as gw:
            zero, ready0 = await open_shard(gw, [0, 4])
            one, ready1 = await open_shard(gw, [1, 4])  # another bucket: allowed at once
            assert ready0["t"] == ready1["t"] == "READY"
            two, answer = await open_shard(gw, [2, 4])  # bucket 0 again, too soon
            assert answer == {"t": None, "s": None, "op": 9, "d": False}
            violation = gw.identify_violations[0]
            assert violation.kind == "concurrency" and violation.shard == (2, 4) and violation.bucket == 0
            assert violation.since_last is not None and violation.since_last < 0.4
            assert gw.session_start_limit.remaining == 998  # the refused IDENTIFY spent nothing
            await asyncio.sleep(0.4)
            await two.send({"op": 2, "d": {"token": TOKEN, "intents": 1, "properties": {}, "shard": [2, 4]}})
            assert (await two.recv())["t"] == "READY"
            assert sorted(gw.identify_times) == [0, 1]
            assert len(gw.identify_times[0]) == 2 and len(gw.identify_times[1]) == 1
            assert gw.identify_times[0][1] - gw.identify_times[0][0] >= 0.4
            for client in (zero, one, two):
                await client.websocket.close()

    run(body)


def test_one_shard_is_targeted_by_shard_or_connection() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            zero, _ = await open_shard(gw, [0, 2])
            one, _ = await open_shard(gw, [1, 2])
            assert (await gw.wait_for_shard(1)).shard == (1, 2)
            assert gw.session_for_shard(0).shard == (0, 2) and gw.session_for_shard(0, 2) is gw.session_for_shard(0)
            assert gw.connection_for_shard(1) is gw.connections[1]
            with pytest.raises(LookupError):
                gw.session_for_shard(0, 3)
            with pytest.raises(LookupError):
                gw.connection_for_shard(5)
            await gw.dispatch("MESSAGE_CREATE", {"id": "1"}, shard=1)
            assert (await one.recv())["d"] == {"id": "1"}
            await gw.dispatch("MESSAGE_CREATE", {"id": "0"}, session=gw.session_for_shard(0))
            assert (await zero.recv())["d"] == {"id": "0"}
            await gw.reconnect(shard=0)
            assert (await zero.recv())["op"] == 7
            await gw.close(4000, shard=1)
            assert await one.closed_code() == 4000
            assert gw.connections[0].open  # shard 0 untouched
            with pytest.raises(LookupError):
                gw.connection_for_shard(1)  # detached until it resumes
            assert not gw.session_for_shard(1).invalidated
            await gw.drop(connection=gw.connection_for_shard(0))
            assert await zero.closed_code() is None
            with pytest.raises(ValueError):
                await gw.close(4000, shard=0, connection=gw.connections[0])

    run(body)


def test_shard_counts_may_differ_between_sessions_but_ids_must_fit() -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, shard_count_multiple=2) as gw:
            old, ready_old = await open_shard(gw, [1, 2])
            new, ready_new = await open_shard(gw, [3, 4])  # resharding: both counts at once, as the spec allows
            assert ready_old["t"] == ready_new["t"] == "READY"
            assert gw.session_for_shard(1, 2) is not gw.session_for_shard(3, 4)
            out_of_range, _ = await open_shard(gw, [4, 4])
            assert await out_of_range.closed_code() == 4010
            not_multiple, _ = await open_shard(gw, [0, 3])
            assert await not_multiple.closed_code() == 4010
            for client in (old, new):
                await client.websocket.close()

    run(body)


def test_sharding_required_when_a_shard_would_hold_too_many_guilds() -> None:
    async def body() -> None:
        guilds = [{"id": str((n << 22) | 7)} for n in range(4)]  # shard n % 2 of 2
        async with FakeGateway(token=TOKEN, guilds=guilds, max_guilds_per_shard=2) as gw:
            unsharded, _ = await open_shard(gw, None)
            assert await unsharded.closed_code() == 4011
            sharded, ready = await open_shard(gw, [0, 2])
            assert ready["t"] == "READY" and len(ready["d"]["guilds"]) == 2
            await sharded.websocket.close()

    run(body)


def test_token_stays_out_of_the_fakes_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.http import fetch_gateway_info

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            client, ready = await open_shard(gw, [0, 1])
            await fetch_gateway_info(TOKEN, api_url=gw.api_url)
            await client.websocket.close()
            await gw.connections[0].wait_closed()

    with caplog.at_level(logging.DEBUG):
        run(body)
    # the test's own websockets client logs what it sends; only the package's loggers are checked
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("gateway"))
    assert "Authorization" in ours and '"token"' in ours  # the lines are there ...
    assert TOKEN not in ours  # ... without the secret
