"""Fuzz target: the sans-I/O ``ShardProtocol`` under arbitrary sequences of inputs and times.

A small driver model feeds the protocol what a driver could (connects that succeed or fail, HELLO with any interval,
READY/RESUMED/dispatches with any sequence, op 1/7/9/11, garbage, close codes of every kind, early and late timers,
identify grants, user commands of any size, a user close) at times the input chooses, and checks after every step:

- never two connections at once (a Connect while one is connecting or open);
- at most 120 payloads in any 60 s of one connection (server-requested heartbeats aside, for heartbeat intervals
  of at least 60/9 s: the documented range of the limiter's heartbeat reserve);
- never IDENTIFY on a connection opened to RESUME, and a session is
  only given up when the close policy says so (op 9 false, close 4007/4009, a fatal code, the user's 1000/1001);
- interval heartbeats never earlier than the interval after the previous one (replies to op 1 aside);
- no exception but the documented ones; exactly one Stop in the end, and no action after it.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

from tests.fuzz._common import Finding, fuzz_main, instrumented, quiet_logs

with instrumented():
    from gateway._envelope import EventFilter
    from gateway.errors import FatalCloseError, PayloadError, ShardClosedError
    from gateway.models import Session, ShardId
    from gateway.protocol import (
        CLOSE_POLICY,
        Abort,
        CancelIdentify,
        Close,
        CloseAction,
        Connect,
        RequestIdentify,
        ShardProtocol,
        Stop,
    )

quiet_logs()

_SCAN = EventFilter(0).scan
_CODES = (None, 1000, 1001, 1002, 1005, 1006, 1011, 4000, 4001, 4002, 4003, 4004, 4005, 4007, 4008, 4009, 4010,
          4011, 4012, 4013, 4014, 3000, 4999)
_NEW_SESSION_CODES = frozenset(code for code, action in CLOSE_POLICY.items() if action is CloseAction.NEW_SESSION)
_FATAL_CODES = frozenset(code for code, action in CLOSE_POLICY.items() if action is CloseAction.FATAL)
_RESUME_URLS = ("wss://resume.example", "ws://plain.example", "https://elsewhere.example", "", "wss://", None,
                "wss://r.example/?q=secret")
_GARBAGE = (b"{not json", b'{"op":"x"}', b'{"op":12,"d":null}', b'{"op":10,"d":{}}', b'{"op":10,"d":{"heartbeat_interval":-1}}',
            b'{"op":0,"t":"READY","s":1,"d":{}}', b'{"op":9,"d":"yes"}', b'{"op":0,"t":"X","s":99999999999999999999,"d":1}',
            b'{"op":11}', b"[]")


class _Model:
    """What the driver knows: the connection it has, the payloads sent on it, and what the protocol emitted."""

    def __init__(self) -> None:
        self.now = 0.0
        self.connection: str | None = None  # None, "connecting", "open"
        self.connect: Connect | None = None
        self.closing_by_us = False
        self.sent: list[tuple[float, int, bool]] = []  # (time, op, requested heartbeat) on this connection
        self.interval: float | None = None
        self.last_interval_beat: float | None = None
        self.identify_pending = False
        self.stops = 0
        self.stopped = False
        self.user_closed = False
        self.invalidated = False  # op 9 false processed on this connection
        self.connects = 0


def _payload(message: dict[str, Any] | bytes) -> tuple[int, Any, str, bytes, int, int]:
    raw = message if isinstance(message, bytes) else json.dumps(message).encode()
    op, seq, name, d_start, d_end, _ = _SCAN(raw)
    return op, seq, name, raw, d_start, d_end


class _Run:
    def __init__(self, data: bytes) -> None:
        self.data = data
        rng = random.Random(data[:16])
        self.rng = rng
        saved = data[0] & 1
        self.proto = ShardProtocol(
            ShardId(data[1] % 4 if len(data) > 1 else 0, 4), "token.fuzz", 513, gateway_url="wss://gateway.example",
            compression=None, session=Session("saved", 5) if saved else None,
            resume_url=_RESUME_URLS[data[0] >> 1 & 7 % len(_RESUME_URLS)] if saved else None, rng=rng.random,
        )
        self.model = _Model()
        self.seq = 0

    # -- output checks ---------------------------------------------------------------------------------------

    def collect(self, source: str) -> None:
        model, proto = self.model, self.proto
        data = proto.data_to_send()
        actions = proto.actions()
        if model.stopped and (data or actions):
            raise Finding(f"output after Stop ({source}): {data!r:.200} {actions!r:.200}")
        for raw in data:
            self.on_sent(json.loads(raw), source)
        for action in actions:
            self.on_action(action, source)

    def on_sent(self, payload: dict[str, Any], source: str) -> None:
        model = self.model
        op = payload.get("op")
        if model.connection != "open":
            raise Finding(f"op {op} written with no open connection ({source})")
        now = model.now
        requested = op == 1 and source == "op1"
        if op == 1 and source == "timer":
            if model.last_interval_beat is not None and model.interval is not None:
                if now < model.last_interval_beat + model.interval - 1e-6:
                    raise Finding(f"heartbeat at {now:.3f} only {now - model.last_interval_beat:.3f} s after the "
                                  f"previous one; interval {model.interval:.3f} s")
            model.last_interval_beat = now
        if op == 2 and model.connect is not None and model.connect.resume:
            raise Finding("IDENTIFY on a connection opened to RESUME")
        model.sent.append((now, op, requested))
        if model.interval is not None and model.interval >= 60 / 9:
            # An entry leaves the window exactly 60 s after it was sent, computed as the limiter does (t + 60 > now):
            # "now - 60 < t" rounds differently at the boundary (first finding, tests/fuzz/regressions/protocol/).
            window = [t for t, _, req in model.sent if not req and t + 60.0 > now]
            if len(window) > 120:
                raise Finding(f"{len(window)} payloads within 60 s on one connection (interval {model.interval} s)")

    def on_action(self, action: Any, source: str) -> None:
        model = self.model
        if isinstance(action, Connect):
            if model.connection is not None:
                raise Finding(f"Connect while a connection is {model.connection} ({source})")
            model.connection, model.connect, model.connects = "connecting", action, model.connects + 1
            if action.resume != (self.proto.session is not None):
                raise Finding(f"Connect(resume={action.resume}) with session {self.proto.session}")
            if "ws://" in action.url or not action.url.startswith("wss://"):
                raise Finding(f"Connect to {action.url!r}: not the configured wss:// scheme")
        elif isinstance(action, RequestIdentify):
            model.identify_pending = True
        elif isinstance(action, CancelIdentify):
            model.identify_pending = False
        elif isinstance(action, (Close, Abort)):
            if model.connection != "open":
                raise Finding(f"{action} with no open connection")
            model.closing_by_us = True
        elif isinstance(action, Stop):
            model.stops += 1
            model.stopped = True
            if model.stops > 1:
                raise Finding("a second Stop")

    # -- inputs ----------------------------------------------------------------------------------------------

    def call(self, source: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except (ShardClosedError, FatalCloseError):
            if not self.model.stopped:
                raise Finding(f"{source}: shard-closed error before Stop") from None
            result = None
        except ValueError as exc:
            if source != "command" or "4096" not in str(exc):
                raise Finding(f"{source}: ValueError {exc}") from None
            result = None
        self.collect(source)
        return result

    def receive(self, message: dict[str, Any] | bytes, source: str = "receive") -> None:
        model = self.model
        if model.connection != "open":
            return
        try:
            op, seq, name, raw, d_start, d_end = _payload(message)
        except PayloadError as exc:
            self.call("payload_error", self.proto.payload_error, exc, model.now)
            return
        self.call(source, self.proto.receive, op, seq, name, raw, d_start, d_end, model.now)

    def lost(self, code: int | None, by_client: bool) -> None:
        model, proto = self.model, self.proto
        had_session = proto.session is not None
        we_closed, invalidated = model.closing_by_us, model.invalidated
        model.connection, model.connect, model.closing_by_us, model.invalidated = None, None, False, False
        model.sent, model.interval, model.last_interval_beat, model.identify_pending = [], None, None, False
        ours = by_client and we_closed
        self.call("lost", proto.connection_lost, code, "", model.now, initiated_by_client=by_client)
        if model.stopped:
            return
        if code in _FATAL_CODES and not ours and not by_client:
            raise Finding(f"fatal close code {code} from the peer did not stop the shard")
        if not had_session or model.user_closed:
            return
        if we_closed:
            expect_resume = not invalidated
        elif by_client:
            expect_resume = code not in (1000, 1001)
        else:
            expect_resume = code not in _NEW_SESSION_CODES
        if expect_resume != (proto.session is not None):
            raise Finding(f"after close code {code} (by_client={by_client}, we_closed={we_closed}, op9 false="
                          f"{invalidated}) the session is {proto.session}; policy says resume={expect_resume}")

    def step(self, op: int, arg: int) -> None:
        model, proto = self.model, self.proto
        kind = op % 19
        if kind == 0:
            model.now += (arg * arg) / 64.0  # up to ~1000 s, fine-grained at the low end
        elif kind == 1:
            deadline = proto.next_deadline()
            if deadline is not None:
                model.now = max(model.now, deadline)
            self.call("timer", proto.handle_timer, model.now)
        elif kind == 2:
            self.call("timer", proto.handle_timer, model.now)
        elif kind == 3:
            if model.connection == "connecting" or arg & 1:
                if model.connection == "connecting":
                    model.connection = "open"
                self.call("opened", proto.connection_opened, model.now)
        elif kind == 4:
            if model.connection == "connecting" or arg & 1:
                if model.connection == "connecting":
                    model.connection, model.connect = None, None
                self.call("failed", proto.connect_failed, model.now, OSError("refused"))
        elif kind == 5:
            interval_ms = (100, 1000, 6667, 41250, 45000, 60000, 0.5, 300000)[arg % 8] if arg < 200 else arg * 37
            was_open = model.connection == "open"
            self.receive({"op": 10, "d": {"heartbeat_interval": interval_ms}})
            if was_open and proto.heartbeat_interval is not None and model.interval is None:
                model.interval = proto.heartbeat_interval
        elif kind == 6:
            self.seq += 1
            url = _RESUME_URLS[arg % len(_RESUME_URLS)]
            d: dict[str, Any] = {"session_id": f"s{arg}", "v": 10}
            if url is not None:
                d["resume_gateway_url"] = url
            self.receive({"op": 0, "t": "READY", "s": self.seq, "d": d})
            if proto.resume_url is not None and not proto.resume_url.startswith("wss://"):
                raise Finding(f"READY's resume_gateway_url {url!r} accepted as {proto.resume_url!r}")
        elif kind == 7:
            self.seq += 1
            self.receive({"op": 0, "t": "RESUMED", "s": self.seq, "d": None})
        elif kind == 8:
            self.seq = max(0, self.seq + arg % 16 - 4)
            self.receive({"op": 0, "t": "MESSAGE_CREATE", "s": self.seq, "d": {"n": arg}})
        elif kind == 9:
            self.receive({"op": 1, "d": None}, "op1")
        elif kind == 10:
            self.receive({"op": 11, "d": None})
        elif kind == 11:
            self.receive({"op": 7, "d": None})
        elif kind == 12:
            resumable = bool(arg & 1)
            if model.connection == "open" and not model.closing_by_us and not resumable:
                model.invalidated = True
            self.receive({"op": 9, "d": resumable})
        elif kind == 13:
            code = _CODES[arg % len(_CODES)]
            if model.connection == "open":
                by_client = bool(arg & 0x80) and model.closing_by_us
                self.lost(code, by_client)
            elif arg & 0x40:
                self.call("lost", proto.connection_lost, code, "", model.now)
        elif kind == 14:
            if model.identify_pending or arg & 1:
                model.identify_pending = False
                self.call("grant", proto.identify_granted, model.now)
        elif kind == 15:
            if arg == 255:
                self.call("command", proto.send_command, {"op": 3, "d": {"x": "a" * 4097}}, model.now)
            for _ in range(1 + (arg & 0x3F) * (3 if arg & 0x40 else 1)):  # bursts of up to 190 commands
                self.call("command", proto.send_command, {"op": 3, "d": {"n": arg}}, model.now)
        elif kind == 16:
            if arg & 3 == 0 and not model.user_closed:
                model.user_closed = True
                self.call("close", proto.close, model.now, (1000, 1001, 4000, 4999)[arg >> 2 & 3])
        elif kind == 17:
            self.receive(_GARBAGE[arg % len(_GARBAGE)])
        else:
            if arg & 1:
                self.call("payload_error", proto.payload_error, PayloadError("bad", b"x"), model.now)
            else:
                self.call("compression_error", proto.compression_error, ValueError("corrupt"), model.now)

    def finish(self) -> None:
        """User close, then play the driver until Stop: exactly one Stop must come out."""
        model, proto = self.model, self.proto
        model.user_closed = True
        self.call("close", proto.close, model.now, 1000)
        for _ in range(6):
            if model.stopped:
                break
            if model.connection == "open":
                model.now += 6.0
                self.call("timer", proto.handle_timer, model.now)  # close timeout -> Abort
                self.lost(1000 if model.closing_by_us else None, model.closing_by_us)
            elif model.connection == "connecting":
                model.connection = None
                self.call("failed", proto.connect_failed, model.now)
            else:
                deadline = proto.next_deadline()
                model.now = max(model.now, deadline or model.now)
                self.call("timer", proto.handle_timer, model.now)
        if model.stops != 1:
            raise Finding(f"{model.stops} Stop actions after the user close (phase {proto!r})")


def check(data: bytes) -> None:
    if len(data) < 2:
        return
    run = _Run(data)
    run.call("start", run.proto.start, 0.0)
    body = data[2:]
    for i in range(0, len(body) - 1, 2):
        if run.model.stopped:
            break
        run.step(body[i], body[i + 1])
    if not run.model.stopped:
        run.finish()
    elif run.model.stops != 1:
        raise Finding(f"{run.model.stops} Stop actions")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    check(data)


def main() -> None:
    fuzz_main(check, "protocol")


if __name__ == "__main__":
    main()
