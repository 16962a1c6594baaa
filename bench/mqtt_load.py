"""MQTT load test: N simulated rigs in one process, one broker, one counting subscriber.

Each rig runs the real supervisor and rig loop on a physics pump, publishes ``state`` at 1 Hz
and ``beats`` at 2 Hz through its own :class:`~vasopilot.telemetry.Telemetry`, and changes its
dose now and then so ``events`` carry dose changes as well as summaries. The subscriber checks
that every rig's events arrive gap-free in ``seq`` order (against the journal at the end) and
measures publish-to-receive latency on beats: from the moment a beat is handed to telemetry to
its arrival (this includes telemetry's poll period).

With its own broker it also restarts the broker ``--restarts`` times (default 2) during the run
(persistence on, the counter on a persistent QoS 1 session): events journaled must still equal
events received.

    .venv/bin/python bench/mqtt_load.py --minutes 5
    .venv/bin/python bench/mqtt_load.py --minutes 0.5 --rigs 5 --broker mqtt://127.0.0.1:1883

Without ``--broker`` it starts its own Mosquitto on a free loopback port.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from drivers.sim.syringe_pump import SimLineSignals, SimSyringePump
from safety.supervisor import Supervisor
from vasopilot.control.manual import ManualMode
from vasopilot.core.clock import MonotonicClock, VirtualClock
from vasopilot.core.config import MqttSettings
from vasopilot.core.types import Beat, DoseRequest, Requester
from vasopilot.journal import Journal
from vasopilot.runtime import RigLoop
from vasopilot.settings import load_rig
from vasopilot.telemetry import Telemetry
from vasopilot.telemetry.payloads import BeatPayload, EventPayload
from vasopilot.telemetry.url import settings_from_url, with_password

STEP_S = 0.5


class PacedBeats:
    """One good beat per step; the beat's time is the shared time line, for latency."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    def read_beats(self) -> list[Beat]:
        return [Beat(t_s=self._clock.now_s(), sbp_mmhg=110, dbp_mmhg=60, map_mmhg=72,
                     hr_bpm=85)]


class BenchRig:
    def __init__(self, index: int, folder: Path, settings: MqttSettings,
                 clock: VirtualClock) -> None:
        config = load_rig(None)
        self.rig_id = f"load-{index:02d}"
        self.journal = Journal(folder / f"{self.rig_id}.sqlite", clock, flush_interval_s=1.0)
        pump = SimSyringePump(clock, config.syringe, config.profile.pump.mechanics)
        self.pump = pump
        self.supervisor = Supervisor(pump, drug=config.drug, patient=config.profile.patient,
                                     safety=config.profile.safety, syringe=config.syringe,
                                     sink=self.journal)
        self.telemetry = Telemetry(settings, self.rig_id, self.journal.path, after_seq=0)
        self.loop = RigLoop(self.supervisor, PacedBeats(clock), ManualMode(),
                            self.journal, line=SimLineSignals(pump),
                            on_beat=self.telemetry.offer_beat)
        self.supervisor.start(8.0 + index % 4, 0.0, soft_limit_confirmed=True)


class Counter:
    """The subscriber: events per rig in seq order, beat latencies against the time line."""

    def __init__(self, settings: MqttSettings, timeline: MonotonicClock, t0_s: float) -> None:
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.out_of_order = 0
        self.latencies_s: list[float] = []
        self.states = 0
        self._timeline = timeline
        self._t0_s = t0_s
        self._lock = threading.Lock()
        # A persistent session: what is published while the counter reconnects after a broker
        # restart waits for it in the broker.
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="load-counter",
                                  clean_session=False)
        self.client.reconnect_delay_set(1, 2)
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self.client.tls_set(ca_certs=settings.ca_file)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe("vasopilot/#", qos=1)
        self.client.connect(settings.host, settings.port, keepalive=10)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise SystemExit("mqtt_load: the counting subscriber could not subscribe")

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        leaf = msg.topic.rsplit("/", 1)[1]
        with self._lock:
            if leaf == "events":
                event = EventPayload.model_validate_json(msg.payload)
                seqs = self.seqs[event.rig_id]
                # A repeat after a reconnection is at-least-once delivery; a new event below
                # one already seen is out of order.
                if seqs and event.seq < max(seqs) and event.seq not in seqs:
                    self.out_of_order += 1
                seqs.append(event.seq)
            elif leaf == "beats":
                beat = BeatPayload.model_validate_json(msg.payload)
                now_s = self._timeline.now_s() - self._t0_s
                self.latencies_s.append(now_s - beat.t_s)
            elif leaf == "state":
                self.states += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def request_dose(supervisor: Supervisor, dose_mcg_min: float, now_s: float) -> None:
    supervisor.request(DoseRequest(dose_mcg_min, Requester.OPERATOR, "load test"), now_s)


def start_broker(folder: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
    conf = folder / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {folder}/\n"
                    "max_queued_messages 100000\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    pause = threading.Event()
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            pause.wait(0.01)
    proc.kill()
    raise SystemExit(f"mqtt_load: mosquitto did not start on port {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rigs", type=int, default=20)
    parser.add_argument("--broker", help="mqtt[s]://user@host:port, password in "
                        "$VASOPILOT_MQTT_PASSWORD (default: own broker)")
    parser.add_argument("--restarts", type=int, default=2,
                        help="broker restarts during the run (own broker only; default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mqtt-load-") as tmp:
        folder = Path(tmp)
        broker: list[subprocess.Popen[bytes]] = []
        restart = None
        if args.broker:
            settings = with_password(settings_from_url(args.broker))
        else:
            proc, port = start_broker(folder)
            broker.append(proc)
            settings = MqttSettings(enabled=True, port=port, insecure=True)

            def restart() -> None:
                broker[-1].terminate()  # a clean stop saves the persisted sessions
                broker[-1].wait(10)
                broker.append(start_broker(folder, port)[0])
        settings = settings.model_copy(update={"publish_beats": True, "state_interval_s": 1.0})
        try:
            return run(args, folder, settings, restart)
        finally:
            if broker:
                broker[-1].terminate()
                broker[-1].wait(5)


def run(args: argparse.Namespace, folder: Path, settings: MqttSettings,
        restart: Callable[[], None] | None) -> int:
    timeline = MonotonicClock()
    t0_s = timeline.now_s()
    counter = Counter(settings, timeline, t0_s)
    clock = VirtualClock()
    rigs = [BenchRig(i, folder, settings, clock) for i in range(args.rigs)]
    for rig in rigs:
        rig.telemetry.bind_loop(rig.loop)
        rig.telemetry.start()
    end_s = args.minutes * 60.0
    restarts = args.restarts if restart is not None else 0
    restart_at_s = [end_s * (i + 1) / (restarts + 1) for i in range(restarts)]
    step = 0
    while clock.now_s() < end_s:
        if restart is not None and restart_at_s and clock.now_s() >= restart_at_s[0]:
            restart_at_s.pop(0)
            restart()
        step += 1
        timeline.sleep(t0_s + step * STEP_S - timeline.now_s())
        now_s = clock.advance_to(timeline.now_s() - t0_s)
        for i, rig in enumerate(rigs):
            rig.pump.advance()
            # Every rig nudges its dose every 30 s, staggered, so events include dose changes.
            if step % 60 == i % 60:
                dose = 8.0 + (step // 60 + i) % 4
                rig.loop.submit(functools.partial(request_dose, rig.supervisor, dose))
            rig.loop.step(now_s)
    for rig in rigs:
        rig.journal.flush()
        rig.telemetry.close(drain_timeout_s=10.0)
    timeline.sleep(1.0)
    counter.close()
    lost = 0
    journaled = sum(rig.journal.last_seq() for rig in rigs)
    for rig in rigs:
        expected = list(range(1, rig.journal.last_seq() + 1))
        got = sorted(set(counter.seqs[rig.rig_id]))
        lost += len(set(expected) - set(got))
        rig.journal.close()
    total = sum(len(s) for s in counter.seqs.values())
    unique = sum(len(set(s)) for s in counter.seqs.values())
    lat = sorted(counter.latencies_s)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
    print(f"rigs {args.rigs}, {args.minutes:g} min real time, state 1 Hz, beats 2 Hz, "
          f"broker restarts {restarts}")
    print(f"events journaled {journaled}, received {unique} (with {total - unique} repeats "
          f"after reconnections), lost {lost}, out of order {counter.out_of_order}, "
          f"state messages {counter.states}, beats {len(lat)}")
    if lat:
        print(f"beat publish-to-receive latency: median {statistics.median(lat) * 1e3:.1f} ms, "
              f"p99 {p99 * 1e3:.1f} ms, max {lat[-1] * 1e3:.1f} ms")
    return 0 if lost == 0 and counter.out_of_order == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
