"""An open-loop HTTP load: requests sent on a fixed schedule, whatever the answers.

wrk (and any closed-loop client) sends the next request only when an answer came back,
so when the server slows down the offered load drops with it and the queueing is hidden
(coordinated omission): "twice the capacity" cannot be offered that way. Here request
``i`` of a phase at ``rate``/s is due at ``start + i / rate`` and its latency is measured
from that due time, so a request delayed by the client's own backlog counts as late.

Run as its own process (the server's CPU is not shared with the generator's event loop):

    python -m bench.open_loop --url URL --requests FILE --phase 600:120 --phase 120:240 \
        --out result.json

``FILE`` holds JSON ``[{"body": "...", "token": "..."}, ...]`` cycled through in order.
Each request records its phase, due time, latency (ms), status (0: no answer: a
connection error or the time-out) and whether a ``Retry-After`` came with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

__all__ = ["Phase", "main"]


@dataclass(frozen=True)
class Phase:
    seconds: float
    rate: float  # requests per second

    @classmethod
    def parse(cls, text: str) -> Phase:
        seconds, rate = text.split(":")
        return cls(float(seconds), float(rate))


@dataclass
class Record:
    phase: list[int] = field(default_factory=list)
    due: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    retry_after: list[bool] = field(default_factory=list)
    code: list[str] = field(default_factory=list)  # the error code of a refusal, else ""


async def _one(
    session: aiohttp.ClientSession,
    *,
    url: str,
    request: dict[str, str],
    due: float,
    phase: int,
    record: Record,
    began: float,
) -> None:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {request['token']}"}
    status, retry_after, code = 0, False, ""
    try:
        async with session.post(url, data=request["body"], headers=headers) as response:
            body = await response.read()
            status, retry_after = response.status, "Retry-After" in response.headers
            if status >= 400:
                code = _error_code(body)
    except (aiohttp.ClientError, TimeoutError):
        code = "no_answer"
    record.phase.append(phase)
    record.due.append(due - began)
    record.latency_ms.append((time.perf_counter() - due) * 1000)
    record.status.append(status)
    record.retry_after.append(retry_after)
    record.code.append(code)


def _error_code(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return "not_json"
    return str(parsed.get("error", "?")) if isinstance(parsed, dict) else "?"


async def run(
    url: str, requests: list[dict[str, str]], phases: list[Phase], timeout: float
) -> Record:
    record = Record()
    connector = aiohttp.TCPConnector(limit=1024, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        began = time.perf_counter()
        start, sent = began, 0
        for number, phase in enumerate(phases):
            count = int(phase.seconds * phase.rate)
            for i in range(count):
                due = start + i / phase.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                request = requests[sent % len(requests)]
                sent += 1
                task = asyncio.create_task(
                    _one(
                        session,
                        url=url,
                        request=request,
                        due=due,
                        phase=number,
                        record=record,
                        began=began,
                    )
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            start += phase.seconds
        if tasks:
            await asyncio.gather(*tasks)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument(
        "--phase", type=Phase.parse, action="append", required=True, help="SECONDS:RATE"
    )
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    requests = json.loads(args.requests.read_text(encoding="utf-8"))
    record = asyncio.run(run(args.url, requests, args.phase, args.timeout))
    args.out.write_text(json.dumps(record.__dict__), encoding="utf-8")


if __name__ == "__main__":
    main()
