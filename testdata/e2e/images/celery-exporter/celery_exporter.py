#!/usr/bin/env python3
"""A Celery exporter for obcd's end-to-end stack, in the manner of
danihodovic/celery-exporter, which Debian does not package.

It captures the events the workers send (worker_send_task_events,
task_send_sent_event) from the broker in $CE_BROKER_URL and serves, on
$CE_PORT (9808):

  celery_worker_up{hostname}                 1 while the worker's heartbeats arrive
  celery_worker_tasks_active{hostname}       tasks the worker is running
  celery_task_sent_total{name,hostname}
  celery_task_received_total{name,hostname}
  celery_task_started_total{name,hostname}
  celery_task_succeeded_total{name,hostname}
  celery_task_failed_total{name,hostname}
  celery_task_retried_total{name,hostname}
  celery_task_runtime_seconds{name,hostname} (histogram)
"""
import logging
import os
import sys
import threading
import time

from celery import Celery
from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("celery-exporter")
HEARTBEAT_TIMEOUT = float(os.environ.get("CE_WORKER_TIMEOUT", "60"))

LABELS = ["name", "hostname"]
TASK_COUNTERS = {
    state: Counter(f"celery_task_{state}", f"Tasks {state}.", LABELS)
    for state in ("sent", "received", "started", "succeeded", "failed", "retried")
}
RUNTIME = Histogram("celery_task_runtime_seconds", "Task run time.", LABELS)
WORKER_UP = Gauge("celery_worker_up", "1 while the worker's heartbeats arrive.", ["hostname"])
WORKER_ACTIVE = Gauge("celery_worker_tasks_active", "Tasks the worker is running.", ["hostname"])


class Exporter:
    def __init__(self, app):
        self.app = app
        self.state = app.events.State()
        self.last_seen = {}
        self.lock = threading.Lock()

    def on_event(self, event):
        self.state.event(event)
        kind = event.get("type", "")
        hostname = event.get("hostname", "")
        if kind.startswith("worker-"):
            with self.lock:
                if kind == "worker-offline":
                    self.last_seen.pop(hostname, None)
                    WORKER_UP.labels(hostname=hostname).set(0)
                else:
                    self.last_seen[hostname] = time.monotonic()
                    WORKER_UP.labels(hostname=hostname).set(1)
                    WORKER_ACTIVE.labels(hostname=hostname).set(event.get("active", 0) or 0)
            return
        if not kind.startswith("task-"):
            return
        state = kind[len("task-"):]
        task = self.state.tasks.get(event.get("uuid"))
        name = (task.name if task is not None and task.name else event.get("name")) or "unknown"
        if state in TASK_COUNTERS:
            TASK_COUNTERS[state].labels(name=name, hostname=hostname).inc()
        if state == "succeeded" and event.get("runtime") is not None:
            RUNTIME.labels(name=name, hostname=hostname).observe(float(event["runtime"]))

    def expire_workers(self):
        while True:
            time.sleep(5)
            now = time.monotonic()
            with self.lock:
                for hostname, seen in list(self.last_seen.items()):
                    if now - seen > HEARTBEAT_TIMEOUT:
                        del self.last_seen[hostname]
                        WORKER_UP.labels(hostname=hostname).set(0)

    def run(self):
        threading.Thread(target=self.expire_workers, daemon=True).start()
        while True:
            try:
                with self.app.connection() as connection:
                    receiver = self.app.events.Receiver(connection, handlers={"*": self.on_event})
                    log.info("capturing events from the broker")
                    receiver.capture(limit=None, timeout=None, wakeup=True)
            except Exception as exc:  # noqa: BLE001 - reconnect on any broker error
                log.warning("broker connection lost (%s); retrying in 2s", exc)
                time.sleep(2)


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    broker = os.environ.get("CE_BROKER_URL")
    if not broker:
        log.error("CE_BROKER_URL is not set")
        return 2
    port = int(os.environ.get("CE_PORT", "9808"))
    start_http_server(port)
    log.info("serving metrics on :%d", port)
    Exporter(Celery(broker=broker)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
