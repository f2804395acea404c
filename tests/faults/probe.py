"""How long an answer took, measured where a busy machine does not blur it: a probe process, and the API's own clock.

A fault test's 200 load clients share one event loop in the test process; on a busy machine that loop's lag is
counted in their timings as if the server had been slow. A bound on answer times is checked instead with:

- ``Probe``: ``python -m tests.faults.probe URL PRODUCT hold|read``, a client in a process of its own sending one
  request at a time (a pause between two: a hold of one unit of the product, or a read of it) until it is
  stopped (SIGTERM), each timed from send to answer on the machine's monotonic clock (the same in every process,
  so a test can tell which requests met its fault);
- ``answered_slower_than``: the API's request-duration histogram, which counts every request, the load's too,
  from its arrival in the app to its answer.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from flashsale.stack.supervisor import die_with_parent

PAUSE_SECONDS = 0.05
"""Between two requests: the probe measures, it adds no load."""
TIMEOUT_SECONDS = 30.0
"""Far above any bound a test checks: a hang shows as a long time, not as a missing answer."""
LIFETIME_SECONDS = 600.0
"""A probe nobody stopped (its test failed first) ends by itself; it also ends with the process that started it."""
PROJECT = Path(__file__).resolve().parents[2]
HISTOGRAM = "flashsale_http_request_duration_seconds"

Answer = tuple[float, float, str]
"""(sent at, on the monotonic clock; seconds until the answer; status and problem code, as the load keys them)"""


def _key(response: httpx.Response) -> str:
    try:
        code = response.json().get("code") if response.status_code >= 400 else None
    except ValueError:
        code = None
    return f"{response.status_code} {code}" if code else str(response.status_code)


def _probe(url: str, product_id: int, kind: str) -> list[Answer]:
    answers: list[Answer] = []
    body = {"product_id": product_id, "quantity": 1, "customer_id": "probe"}
    stopped: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: stopped.append(signum))  # ends the loop, not a request
    with httpx.Client(base_url=url, timeout=TIMEOUT_SECONDS) as http:

        def request() -> httpx.Response:
            if kind == "hold":
                return http.post("/api/holds", json=body)
            return http.get(f"/api/products/{product_id}")

        end = time.monotonic() + LIFETIME_SECONDS
        while not stopped and time.monotonic() < end:
            sent = time.monotonic()
            try:
                answer = _key(request())
            except httpx.HTTPError as error:
                answer = f"no answer {type(error).__name__}"
            answers.append((sent, time.monotonic() - sent, answer))
            if len(answers) == 1:
                print("ready", flush=True)
            time.sleep(PAUSE_SECONDS)
    return answers


class Probe:
    """The probe process against one API; started, it has had its first answer. ``hold``: it holds one unit of
    ``product_id`` each time (give it a product of its own: abandoned, the holds expire); ``read``: it reads the
    product (nothing changes)."""

    def __init__(self, url: str, product_id: int, kind: str = "hold") -> None:
        assert kind in ("hold", "read")
        argv = [sys.executable, "-m", "tests.faults.probe", url, str(product_id), kind]
        self.process = subprocess.Popen(
            argv, cwd=PROJECT, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().strip()
        assert ready == "ready", f"the probe did not start: {ready!r}"

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def answers(self) -> list[Answer]:
        """Stops the probe (after the request it is waiting for) and returns every answer."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=TIMEOUT_SECONDS + 60)
        assert self.process.returncode == 0, f"the probe exited {self.process.returncode}"
        return [(float(sent), float(taken), str(key)) for sent, taken, key in map(json.loads, out.splitlines())]


def answered_slower_than(url: str, bound: float) -> float:
    """How many requests the API at ``url`` has answered in more than ``bound`` seconds by its own clock, all
    routes; ``bound`` must be one of the histogram's buckets."""
    within = answered = 0.0
    buckets = set()
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=TIMEOUT_SECONDS).text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets.add(float(sample.labels["le"]))
                if float(sample.labels["le"]) == bound:
                    within += sample.value
            elif sample.name.endswith("_count"):
                answered += sample.value
    assert bound in buckets, f"{HISTOGRAM} has no bucket at {bound}: {sorted(buckets)}"
    return answered - within


def main() -> None:
    url, product_id, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    for answer in _probe(url, product_id, kind):
        print(json.dumps(answer))


if __name__ == "__main__":
    main()
