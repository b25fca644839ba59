"""The carve bench's write load: an open-loop client in its own process, with a ledger of acks.

Every write carries something the ledger can find again exactly once: a watch event's
`watched_ms` is a per-writer serial number, a comment's body a unique token, a like a video the
writer never liked before, a follow a user it never followed. Follows and likes stay on the
writer's side of the new border: after the cutover a cell knows only its own rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from carveout.bench.carve_http import HttpError, LeanClient
from carveout.bench.servers import _die_with_parent

KINDS = ("events", "like", "comment", "follow")
_BOOKS = {"events": "events", "like": "likes", "comment": "comments", "follow": "follows"}
# Share of requests per kind: events batches dominate, as on a video platform.
MIX = (0.4, 0.25, 0.2, 0.15)
TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 90.0
REPORT_S = 0.25


@dataclass(frozen=True)
class Writer:
    user_id: str
    token: str
    country: str
    moving: bool


@dataclass(frozen=True)
class LoadPlan:
    url: str
    writers: tuple[Writer, ...]
    # Targets per side (True: moving): videos to like and watch, users to follow.
    videos: dict[bool, tuple[str, ...]]
    users: dict[bool, tuple[str, ...]]
    rate: float  # requests per second, half to each side
    batch: int  # watch events per events request
    max_in_flight: int
    seed: int


@dataclass
class Ledger:
    """What the server acknowledged, per writer; `unsure` holds writes that failed or timed
    out, which may or may not have landed (none expected)."""

    events: dict[str, list[int]] = field(default_factory=dict)  # user -> watched_ms serials
    likes: dict[str, list[str]] = field(default_factory=dict)  # user -> video ids
    comments: dict[str, list[str]] = field(default_factory=dict)  # user -> body tokens
    follows: dict[str, list[str]] = field(default_factory=dict)  # user -> followee ids
    unsure: list[dict[str, Any]] = field(default_factory=list)

    def acked(self) -> int:
        """Acknowledged rows (an events batch counts each event)."""
        parts = (self.events, self.likes, self.comments, self.follows)
        return sum(len(v) for part in parts for v in part.values())


@dataclass
class LoadResult:
    # One row per request: start, end (time.monotonic(), system-wide on Linux), moving side,
    # kind index, HTTP status (0: transport error).
    requests: list[tuple[float, float, bool, int, int]]
    ledger: Ledger
    first_error: str = ""
    skipped: int = 0
    started: float = 0.0
    stopped: float = 0.0

    @property
    def errors(self) -> int:
        return sum(1 for r in self.requests if not 200 <= r[4] < 300)

    @property
    def server_errors(self) -> int:
        """Requests answered 5xx: the server's log has their story."""
        return sum(1 for r in self.requests if r[4] >= 500)


class _Client:
    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)  # noqa: S311 - reproducible load, not secrets
        self.acked = 0
        self.errors = 0
        self.skipped = 0  # scheduled requests not sent: their side had max_in_flight / 2 open
        self.requests: list[tuple[float, float, bool, int, int]] = []
        self.ledger = Ledger()
        self.first_error = ""
        self.serial: dict[str, int] = {}
        self.start: dict[tuple[str, str], int] = {}
        self.used: dict[tuple[str, str], int] = {}
        self.turn = {True: 0, False: 0}

    def _next_target(self, who: Writer, what: str) -> str:
        """The writer's next not-yet-used video or user on its own side (a per-writer offset
        into a shuffled list, so writers do not all hit the same rows)."""
        pool = self.plan.videos[who.moving] if what == "video" else self.plan.users[who.moving]
        key = (who.user_id, what)
        if key not in self.start:
            self.start[key] = self.rng.randrange(len(pool))
        used = self.used.get(key, 0)
        if used >= len(pool):
            raise RuntimeError(f"every {what} of the writer's side is taken: lower the load")
        self.used[key] = used + 1
        i = self.start[key] + used
        return pool[i % len(pool)]

    def _request(self, who: Writer, kind: int) -> tuple[str, str, dict[str, Any] | None, Any]:
        """(method, path, json body, ledger entry) for one write."""
        name = KINDS[kind]
        if name == "events":
            first = self.serial.get(who.user_id, 0) + 1
            self.serial[who.user_id] = first + self.plan.batch - 1
            serials = list(range(first, first + self.plan.batch))
            videos = self.plan.videos[who.moving]
            body = {
                "events": [
                    {"video_id": self.rng.choice(videos), "kind": "watch", "watched_ms": s}
                    for s in serials
                ]
            }
            return "POST", "/v1/events", body, serials
        if name == "like":
            video = self._next_target(who, "video")
            return "PUT", f"/v1/videos/{video}/like", None, video
        if name == "comment":
            n = self.serial.get(who.user_id, 0) + 1
            self.serial[who.user_id] = n
            token = f"cb-{who.user_id}-{n}"
            video = self.rng.choice(self.plan.videos[who.moving])
            return "POST", f"/v1/videos/{video}/comments", {"body": token}, token
        followee = self._next_target(who, "user")
        return "PUT", f"/v1/users/{followee}/follow", None, followee

    async def one(self, client: LeanClient, who: Writer, kind: int) -> None:
        method, path, body, entry = self._request(who, kind)
        headers = {"Authorization": f"Bearer {who.token}"}
        began = time.monotonic()
        status = 0
        error = ""
        try:
            response = await client.request(method, path, body, headers)
            status = response.status
            if status >= 300:
                error = f"{method} {path}: HTTP {status} {response.text[:300]}"
            elif KINDS[kind] in ("like", "follow") and not response.json()["changed"]:
                # A fresh target must be a new row; "unchanged" would mean an earlier copy.
                error = f"{method} {path}: answered changed=false for a new target"
        except HttpError as exc:
            error = f"{method} {path}: {type(exc).__name__}: {exc}"
        self.requests.append((began, time.monotonic(), who.moving, kind, status))
        if error:
            self.first_error = self.first_error or error
            self.ledger.unsure.append({"user": who.user_id, "kind": KINDS[kind], "entry": entry})
            self.errors += 1
            return
        book: dict[str, list[Any]] = getattr(self.ledger, _BOOKS[KINDS[kind]])
        items = entry if isinstance(entry, list) else [entry]
        book.setdefault(who.user_id, []).extend(items)
        self.acked += 1

    def pick(self, moving: bool) -> tuple[Writer, int]:
        side = [w for w in self.plan.writers if w.moving == moving]
        who = side[self.turn[moving] % len(side)]
        self.turn[moving] += 1
        kind = self.rng.choices(range(len(KINDS)), weights=MIX)[0]
        return who, kind

    async def drive(self, stop: threading.Event) -> None:
        per_side = max(1, self.plan.max_in_flight // 2)
        in_flight = {True: 0, False: 0}
        tasks: set[asyncio.Task[None]] = set()
        client = LeanClient(self.plan.url, TIMEOUT_S)
        try:

            async def run(who: Writer, kind: int) -> None:
                try:
                    await self.one(client, who, kind)
                finally:
                    in_flight[who.moving] -= 1

            interval = 1.0 / self.plan.rate
            due = time.monotonic()
            next_report = due
            i = 0
            while not stop.is_set():
                if time.monotonic() >= next_report:
                    print(self.acked, self.errors, flush=True)
                    next_report += REPORT_S
                # Open loop, a cap per side: a fenced side's requests pile up to its cap while
                # the other side's keep leaving on schedule (a shared cap would stall both).
                moving = i % 2 == 0
                if in_flight[moving] < per_side:
                    in_flight[moving] += 1
                    task = asyncio.create_task(run(*self.pick(moving)))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    self.skipped += 1
                i += 1
                due += interval
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -1.0:
                    due = time.monotonic()  # the client itself fell behind: no burst after
                else:
                    await asyncio.sleep(0)
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await client.aclose()


def _plan_from_json(raw: dict[str, Any]) -> LoadPlan:
    raw["writers"] = tuple(Writer(**w) for w in raw["writers"])
    raw["videos"] = {k == "true": tuple(v) for k, v in raw["videos"].items()}
    raw["users"] = {k == "true": tuple(v) for k, v in raw["users"].items()}
    return LoadPlan(**raw)


def _plan_to_json(plan: LoadPlan) -> str:
    raw = asdict(plan)
    raw["videos"] = {str(k).lower(): list(v) for k, v in plan.videos.items()}
    raw["users"] = {str(k).lower(): list(v) for k, v in plan.users.items()}
    return json.dumps(raw)


def main(plan_path: str, out_path: str) -> None:
    """The child: load until its stdin closes, print progress lines, write the result file."""
    plan = _plan_from_json(json.loads(Path(plan_path).read_text(encoding="utf-8")))
    client = _Client(plan)
    stop = threading.Event()

    def watch_stdin() -> None:
        # The parent closes our stdin to stop us, and so does its death.
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    started = time.monotonic()
    print("ready", flush=True)
    # uvloop: the client's own event-loop overhead is CPU the server under test does not get.
    uvloop.run(client.drive(stop))
    result = {
        "requests": client.requests,
        "ledger": asdict(client.ledger),
        "first_error": client.first_error,
        "skipped": client.skipped,
        "started": started,
        "stopped": time.monotonic(),
    }
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


class LoadProcess:
    """The load generator as a child process: start(), then stop() returns what it saw."""

    def __init__(self, plan: LoadPlan, folder: Path) -> None:
        self.plan_path = folder / "load-plan.json"
        self.out = folder / "load-result.json"
        self.plan_path.write_text(_plan_to_json(plan), encoding="utf-8")
        self.acked = 0
        self.errors = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        argv = [sys.executable, "-m", "carveout.bench.carve_load"]
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*argv, str(self.plan_path), str(self.out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(60) or not self.alive:
            self.kill()
            raise RuntimeError("the load generator did not start")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            parts = raw.split()
            if parts == [b"ready"]:
                self._ready.set()
            elif len(parts) == 2:
                self.acked, self.errors = int(parts[0]), int(parts[1])
        self._ready.set()

    def stop(self) -> LoadResult:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(JOIN_TIMEOUT_S)
        if self.alive or not self.out.is_file():
            self.kill()
            raise RuntimeError(f"the load generator failed (exit code {self.proc.returncode})")
        raw = json.loads(self.out.read_text(encoding="utf-8"))
        return LoadResult(
            requests=[(a, b, bool(m), int(k), int(s)) for a, b, m, k, s in raw["requests"]],
            ledger=Ledger(**raw["ledger"]),
            first_error=raw["first_error"],
            skipped=raw["skipped"],
            started=raw["started"],
            stopped=raw["stopped"],
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
