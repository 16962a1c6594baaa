"""A real Mosquitto per test on a free loopback port, with users, the shipped ACL and TLS.

The broker runs with a generated config in the test's temporary folder (``user root`` when we
are root, because Mosquitto started as root drops to its own user and could not read the
files) and the ACL that deploy/ ships, word for word. Its accounts: ``rig-01`` and ``rig-02``
(each publishes its own rig), ``alice`` (commands rig-01), ``bob`` (commands rig-02) and
``viewer`` (reads state). The password file is made with ``mosquitto_passwd`` if installed,
else written here in its salted SHA-512 format. Tests skip only when the mosquitto binary is
missing, and say so.
"""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vasopilot.core.config import MqttSettings

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                          if os.path.exists("/usr/sbin/mosquitto") else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
NO_BROKER = ("MQTT TESTS SKIPPED: no mosquitto binary on this machine; run "
             "scripts/ensure-mosquitto.sh (or apt-get install mosquitto) to test telemetry")

USERS = {"rig-01": "rig1-secret", "rig-02": "rig2-secret", "alice": "alice-secret",
         "bob": "bob-secret", "viewer": "view-secret"}
RIG = "rig-01"
DEPLOY_ACL = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "vasopilot.acl"


def write_passwd(path: Path, users: dict[str, str]) -> None:
    """A Mosquitto password file: ``mosquitto_passwd`` if installed, else its ``$6$`` format
    (base64 salt, base64 SHA-512 of password + salt), which Mosquitto 2.0 reads."""
    if MOSQUITTO_PASSWD is not None:
        for i, (user, password) in enumerate(users.items()):
            flags = ["-c", "-b"] if i == 0 else ["-b"]
            subprocess.run([MOSQUITTO_PASSWD, *flags, str(path), user, password], check=True,
                           capture_output=True)
        return
    lines = []
    for user, password in users.items():
        salt = os.urandom(12)
        digest = hashlib.sha512(password.encode() + salt).digest()
        lines.append(f"{user}:$6${base64.b64encode(salt).decode()}$"
                     f"{base64.b64encode(digest).decode()}")
    path.write_text("\n".join(lines) + "\n")


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Whether ``condition`` came true within ``timeout_s`` (checked every 10 ms)."""
    pause = threading.Event()
    for _ in range(max(1, round(timeout_s / 0.01))):
        if condition():
            return True
        pause.wait(0.01)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_test_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (folder / n for n in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
            "-days", "2", "-subj", "/CN=vasopilot test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class Broker:
    """One Mosquitto process; ``restart`` keeps the port and the persisted sessions."""

    def __init__(self, folder: Path, *, tls: bool = False) -> None:
        assert MOSQUITTO is not None
        self.folder = folder
        self.port = free_port()
        self.tls = tls
        self.ca: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        passwd = folder / "passwd"
        write_passwd(passwd, USERS)
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous false",
                 f"password_file {passwd}", f"acl_file {DEPLOY_ACL}",
                 "persistence true", f"persistence_location {folder}/",
                 "max_queued_messages 20000", "max_inflight_messages 100",
                 f"log_dest file {folder / 'mosquitto.log'}"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")
        if tls:
            self.ca, cert, key = make_test_ca(folder)
            lines += [f"cafile {self.ca}", f"certfile {cert}", f"keyfile {key}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout_s: float = 5.0) -> None:
        assert MOSQUITTO is not None
        self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ready = threading.Event()

        def probe() -> None:
            while self._proc is not None and self._proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    ready.set()
                    return
                except OSError:
                    ready.wait(0.02)

        threading.Thread(target=probe, daemon=True).start()
        if not ready.wait(timeout_s):
            err = self._proc.stderr.read().decode() if self._proc.stderr and \
                self._proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {err}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def settings(self, user: str = RIG, *, remote_commands: bool = False,
                 password: str | None = None) -> MqttSettings:
        return MqttSettings(
            enabled=True, host="127.0.0.1", port=self.port, username=user,
            password=USERS.get(user, "") if password is None else password,
            tls=self.tls, insecure=not self.tls, ca_file=str(self.ca) if self.ca else None,
            remote_commands=remote_commands, state_interval_s=0.2)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip(NO_BROKER)
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip(NO_BROKER)
    if shutil.which("openssl") is None:
        pytest.skip("TLS MQTT TEST SKIPPED: no openssl to make a test CA")
    folder = tmp_path / "tls-broker"
    folder.mkdir()
    b = Broker(folder, tls=True)
    b.start()
    yield b
    b.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None = None


@dataclass
class Subscriber:
    """A paho client collecting messages of ``topics`` in a queue (it reconnects by itself).

    ``v5`` speaks MQTT v5 (needed to send Correlation Data and a message expiry).
    """

    broker: Broker
    topics: list[str]
    user: str = "viewer"
    client_id: str | None = None
    persistent: bool = False
    v5: bool = False
    messages: queue.Queue[Received] = field(default_factory=queue.Queue)
    connects: int = 0

    def __post_init__(self) -> None:
        if self.v5:
            self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                      client_id=self.client_id or "", protocol=paho.MQTTv5)
        else:
            self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                      client_id=self.client_id or "",
                                      clean_session=not self.persistent)
        self.client.username_pw_set(self.user, USERS[self.user])
        if self.broker.tls:
            self.client.tls_set(ca_certs=str(self.broker.ca))
        self.client.reconnect_delay_set(0.05, 0.5)
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            Received(m.topic, m.payload, bool(m.retain),
                     getattr(m.properties, "CorrelationData", None)))
        self.client.connect("127.0.0.1", self.broker.port, keepalive=5)
        self.client.loop_start()
        assert self.subscribed.wait(5), "subscriber never got its subscription acknowledged"

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        self.connects += 1
        for t in self.topics:
            client.subscribe(t, qos=1)
        if not self.topics:
            self.subscribed.set()  # a publisher only

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False,
                correlation: bytes | None = None, expiry_s: int | None = None) -> None:
        properties = None
        if correlation is not None or expiry_s is not None:
            assert self.v5, "properties need an MQTT v5 client"
            properties = Properties(PacketTypes.PUBLISH)
            if correlation is not None:
                properties.CorrelationData = correlation
            if expiry_s is not None:
                properties.MessageExpiryInterval = expiry_s
        self.client.publish(topic, payload, qos=1, retain=retain,
                            properties=properties).wait_for_publish(5)

    def next(self, match: Callable[[Received], bool], timeout_s: float = 5.0,
             pump: Callable[[], None] | None = None) -> Received:
        """The next message that ``match``es, waiting at most ``timeout_s`` of queue waits."""
        waited_s = 0.0
        while waited_s < timeout_s:
            if pump is not None:
                pump()
            try:
                msg = self.messages.get(timeout=0.02)
            except queue.Empty:
                waited_s += 0.02
                continue
            if match(msg):
                return msg
        raise AssertionError(f"no matching message within {timeout_s} s")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
