"""The HTTP side of benchmarks/scale.py: sign-in, timed pages, and the closed-loop load test.

Every request goes to the gunicorn the benchmark started on loopback, through a
requests.Session per signed-in account (the CSRF token is read from the sign-in form).
"""

from __future__ import annotations

import random
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import requests

from benchmarks.scale_seed import ADMIN_IDS, FIRST_REVIEWER, PASSWORD, QA_IDS, READERS, email

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
READER, REVIEWER, QA, ADMIN = 1, FIRST_REVIEWER, QA_IDS[0], ADMIN_IDS[0]
WORKERS = 3  # gunicorn workers the benchmark starts (scale.py's Server)


def sign_in(base: str, user_id: int) -> requests.Session:
    """Return a session signed in as the seeded user (raises when the sign-in fails)."""
    s = requests.Session()
    page = s.get(f"{base}/login", timeout=30)
    token = CSRF.search(page.text)
    if not token:
        raise RuntimeError("no CSRF token in the sign-in form")
    r = s.post(f"{base}/login", data={"csrf_token": token.group(1), "email": email(user_id),
                                      "password": PASSWORD}, allow_redirects=False, timeout=60)
    if r.status_code != 302 or "/login" in r.headers.get("Location", "/login"):
        raise RuntimeError(f"sign-in as {email(user_id)} failed: {r.status_code}")
    return s


def pages() -> list[tuple[str, int, str]]:
    """(label, user id, path) of every page measured: the issue's list, each role's home,
    the study page, the worklists (second-opinion lists too)."""
    today = date.today()
    two_days = f"date_from={today - timedelta(days=1)}&date_to={today}"
    # study 1's owner is reader 1 + 1 % 30 = 2: the study page as its radiologist
    return [
        ("home, radiologist", 2, "/"),
        ("home, reviewer", REVIEWER, "/"),
        ("home, QA manager", QA, "/"),
        ("home, admin", ADMIN, "/"),
        ("discrepancy cases, all", QA, "/qa/cases?status=all"),
        ("discrepancy cases, open", QA, "/qa/cases"),
        ("QA dashboard", QA, "/qa/"),
        ("statistics with funnel", QA, "/qa/stats"),
        ("QA reviews list p1", QA, "/qa/reviews"),
        ("audit log, actor filter", QA, f"/audit/?actor={email(READER)}"),
        ("audit CSV, last 2 days", QA, f"/audit/export.csv?{two_days}"),
        ("study list, reviewer", REVIEWER, "/studies/"),
        ("study list, radiologist", 2, "/studies/"),
        ("study page", 2, "/studies/1"),
        ("review worklist", REVIEWER, "/reviews/"),
        ("review worklist JSON", REVIEWER, "/reviews/assignments.json"),
        ("committee list", REVIEWER, "/reviews/committee"),
        ("reader feedback list", 2, "/reviews/feedback"),
        ("second opinions, radiologist", 2, "/opinions/"),
        ("second opinions, QA manager", QA, "/opinions/"),
        ("admin users", ADMIN, "/admin/users"),
    ]


@dataclass
class PageResult:
    label: str
    path: str
    status: int
    times_ms: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else float("nan")

    @property
    def p95(self) -> float:
        return percentile(self.times_ms, 95)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def warm_up(s: requests.Session, url: str, rounds: int, workers: int = WORKERS) -> int:
    """GET url `rounds` times `workers` at once, so that every worker serves it (sequential
    GETs can all land on one or two workers: a worker's first request of a page compiles
    its templates and its rows' scrubbers, 0.6 s of CPU for the review worklist, and was
    then the timed p95). Returns the last status that was not 200, else 200."""
    statuses = [200]

    def get() -> None:
        r = s.get(url, allow_redirects=False, timeout=120)
        _ = r.content
        if r.status_code != 200:
            statuses.append(r.status_code)

    for _ in range(rounds):
        threads = [threading.Thread(target=get) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return statuses[-1]


def measure_pages(base: str, repeat: int = 30, warmup: int = 3,
                  only: str | None = None) -> Iterator[PageResult]:
    """Sign in once per account, warm every page up in every worker (warm_up), then time
    `repeat` sequential GETs of each, yielding each page's result as it is done; the status
    is the last one seen that was not 200, else 200. `only`: the pages whose label contains
    it."""
    sessions: dict[int, requests.Session] = {}
    for label, user_id, path in pages():
        if only and only not in label:
            continue
        if user_id not in sessions:
            sessions[user_id] = sign_in(base, user_id)
        s = sessions[user_id]
        result = PageResult(label, path, warm_up(s, base + path, warmup))
        for _ in range(repeat):
            t = time.perf_counter()
            r = s.get(base + path, allow_redirects=False, timeout=120)
            _ = r.content
            took = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                result.status = r.status_code
            result.times_ms.append(took)
        yield result


# The load test's mix: mostly home pages and worklists, by role.
MIX = {
    "radiologist": ["/", "/", "/opinions/", "/reviews/feedback", "/studies/"],
    "reviewer": ["/", "/", "/reviews/", "/reviews/assignments.json", "/reviews/committee"],
    "qa_manager": ["/", "/qa/", "/qa/cases", "/qa/reviews"],
    "admin": ["/", "/admin/users"],
}


def _role_of(user_id: int) -> str:
    if user_id <= READERS:
        return "radiologist"
    if user_id < QA_IDS[0]:
        return "reviewer"
    return "qa_manager" if user_id in QA_IDS else "admin"


def load_users(n: int) -> list[int]:
    """n distinct accounts, the roles mixed as in a department (about half radiologists)."""
    order = [READER + i for i in range(READERS)]
    reviewers = [FIRST_REVIEWER + i for i in range(QA_IDS[0] - FIRST_REVIEWER)]
    mixed: list[int] = [*QA_IDS, *ADMIN_IDS]
    while order or reviewers:
        for pool, take in ((order, 3), (reviewers, 2)):
            mixed += pool[:take]
            del pool[:take]
    return mixed[:n]


@dataclass
class LoadResult:
    users: int
    seconds: float
    times_ms: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return len(self.times_ms) / self.seconds


def load_test(base: str, users: int, duration: float, think=(0.5, 1.5),
              signed_in=None) -> LoadResult:
    """Closed loop: each account signs in, then GETs a page of its role's mix, thinks
    0.5-1.5 s, again, for `duration` seconds. Errors: status >= 500 or an exception.
    `signed_in`: called once every account is signed in, just before the loop starts."""
    accounts = load_users(users)
    sessions = [sign_in(base, u) for u in accounts]
    if signed_in:
        signed_in()
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + duration

    def user(k: int) -> None:
        rng = random.Random(k)
        s, mix = sessions[k], MIX[_role_of(accounts[k])]
        time.sleep(rng.uniform(0, think[1]))  # spread the first requests
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            try:
                r = s.get(base + rng.choice(mix), allow_redirects=False, timeout=60)
                _ = r.content
                failed = r.status_code >= 500
            except requests.RequestException:
                failed = True
            took = (time.perf_counter() - t) * 1000
            with lock:
                times.append(took)
                errors[0] += failed
            time.sleep(rng.uniform(*think))

    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(users)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(duration + 120)
    return LoadResult(users, time.monotonic() - start, times, errors[0])
