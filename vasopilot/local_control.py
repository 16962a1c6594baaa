"""A person at the bench acts on the running rig: the local control socket.

``vasopilot run`` listens on a Unix socket next to its journal (``<journal>.control``, mode 0660,
owned by the user the rig runs as, so only that user and its group can connect). A client
sends one JSON line, ``{"command": "acknowledge" | "silence", "code": "MAP_LOW"}``, and reads
one JSON line back (:class:`LocalReply`). The sender is the connecting process's user as the
kernel reports it (``SO_PEERCRED``), never what the request claims. Each action is journaled as
an operator action before it is carried out, as a remote command is (S15), with
``by = "local:<user>"``; what could not be journaled is not done.

No network is involved: a bench without a broker (or with remote commands off) can still
acknowledge and silence alarms. A second rig on the same journal is refused at start, because
the live socket answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import stat
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from safety.alarms import AlarmCode
from safety.supervisor import Supervisor
from vasopilot.core.errors import JournalError, VasopilotError
from vasopilot.core.events import Event, OperatorAction
from vasopilot.runtime import RigLoop

SOCKET_MODE = 0o660
LOCAL_PREFIX = "local:"
MAX_REQUEST_BYTES = 1024
REPLY_TIMEOUT_S = 5.0  # the loop steps every 0.2 s: an answer this late means it is stuck


class LocalRequest(BaseModel):
    """What a bench client may ask; strict, so a string is not a number and extras are refused."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    command: Literal["acknowledge", "silence"]
    code: AlarmCode


class LocalReply(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    accepted: bool
    reason: str


def socket_path(journal_path: Path) -> Path:
    """Where the rig of ``journal_path`` listens: beside its journal."""
    return journal_path.with_name(journal_path.name + ".control")


def act(request: LocalRequest, by: str, supervisor: Supervisor, now_s: float,
        sink: Callable[[Event], Event]) -> LocalReply:
    """Carry out ``request`` at ``now_s`` on the rig loop's thread: journal, then act."""
    if request.code not in {a.code for a in supervisor.view(now_s).alarms}:
        return LocalReply(accepted=False, reason=f"no active alarm {request.code.value!r}")
    try:
        sink(OperatorAction(t_s=now_s, action=request.command, by=by,
                            detail=f"alarm {request.code}"))
    except JournalError as exc:
        return LocalReply(accepted=False,
                          reason=f"not acted on: the journal cannot record it ({exc})")
    if request.command == "acknowledge":
        supervisor.acknowledge(request.code, now_s, by=by)
        return LocalReply(accepted=True, reason=f"alarm {request.code} acknowledged")
    supervisor.silence(request.code, now_s, by=by)
    return LocalReply(accepted=True, reason=f"alarm {request.code} silenced")


def _peer_user(writer: asyncio.StreamWriter) -> str:
    sock: socket.socket = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@contextlib.asynccontextmanager
async def control_socket(path: Path, loop: RigLoop,
                         sink: Callable[[Event], Event]) -> AsyncIterator[None]:
    """Listen on ``path`` while the body runs; refuse if a live rig already listens there."""
    clear_stale(path)
    aloop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await _answer(reader, writer)
            writer.write(reply.model_dump_json().encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> LocalReply:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            return LocalReply(accepted=False, reason="request too long")
        try:
            request = LocalRequest.model_validate_json(line)
        except ValidationError as exc:
            return LocalReply(accepted=False, reason=f"not a request: {exc}".splitlines()[0])
        by = LOCAL_PREFIX + _peer_user(writer)
        answer: asyncio.Future[LocalReply] = aloop.create_future()

        def on_loop(now_s: float) -> None:
            try:
                result = act(request, by, loop.supervisor, now_s, sink)
            except Exception as exc:  # a bench request never ends the infusion
                result = LocalReply(accepted=False, reason=f"failed on the rig: {exc}")
            aloop.call_soon_threadsafe(_settle, answer, result)

        loop.submit(on_loop)
        try:
            return await asyncio.wait_for(answer, REPLY_TIMEOUT_S)
        except TimeoutError:
            return LocalReply(accepted=False, reason="the rig loop did not take the request "
                              f"within {REPLY_TIMEOUT_S:g} s")

    server = await asyncio.start_unix_server(handle, path=str(path), limit=MAX_REQUEST_BYTES)
    try:
        os.chmod(path, SOCKET_MODE)
        yield
    finally:
        server.close()
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _settle(future: asyncio.Future[LocalReply], reply: LocalReply) -> None:
    if not future.done():
        future.set_result(reply)


def clear_stale(path: Path) -> None:
    """Remove the socket a dead rig left behind; refuse if a live one answers on it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise VasopilotError(f"{path}: exists and is not a control socket: move it away")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
            return
    raise VasopilotError(f"{path}: another vasopilot run is using this journal: stop it first")


def send(path: Path, request: LocalRequest, *, timeout_s: float = REPLY_TIMEOUT_S + 1.0,
         profile: Path | None = None) -> LocalReply:
    """Ask the rig listening on ``path``; a clear error when no rig is running there."""
    where = f" for {profile}" if profile is not None else ""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise VasopilotError(f"no rig running{where}: nothing listens on {path} "
                                 "(start it with vasopilot run)") from None
        except PermissionError:
            raise VasopilotError(f"{path}: permission denied: the control socket is for the "
                                 "rig's user and group") from None
        sock.sendall(request.model_dump_json().encode() + b"\n")
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise VasopilotError(f"the rig on {path} did not answer within {timeout_s:g} s") \
                from None
    try:
        return LocalReply.model_validate_json(data)
    except ValidationError:
        raise VasopilotError(f"the rig on {path} answered something else: {data[:80]!r}") \
            from None
