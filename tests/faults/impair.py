"""A slow, lossy TCP path in user space, for kernels without ``tc netem``.

Relays ``--listen`` to ``--target``. Every chunk either way is held ``--delay-ms`` before it is
passed on (order kept per direction, as on a link with that latency), and each chunk is, with
probability ``--loss``, held a further retransmission timeout (200 ms, Linux's minimum RTO,
doubled on each consecutive loss) as a lost TCP segment is: TCP never shows loss to an
application as missing bytes, only as a stall. Exits by itself after ``--lifetime`` seconds.

    python impair.py --listen 127.0.0.1:18545 --target 10.231.1.1:8545 --delay-ms 200 --loss 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys

RTO = 0.2


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    loss: float,
    rng: random.Random,
) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def deliver() -> None:
        while (item := await queue.get()) is not None:
            due, chunk = item
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    last_due = 0.0
    try:
        while chunk := await reader.read(16384):
            due = loop.time() + delay
            timeout = RTO
            while rng.random() < loss:  # lost, retransmitted after a timeout (backing off)
                due += timeout
                timeout *= 2
            last_due = max(last_due, due)  # a stalled chunk holds back the ones behind it
            queue.put_nowait((last_due, chunk))
    except (ConnectionError, OSError):
        pass
    finally:
        queue.put_nowait(None)
        await sender


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    host, port = args.listen.rsplit(":", 1)
    target_host, target_port = args.target.rsplit(":", 1)
    delay = args.delay_ms / 1000

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, up_writer, delay, args.loss, rng),  # from the host: delayed, lossy
            _pipe(up_reader, writer, 0.0, args.loss, rng),  # back to it: lossy
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, host, int(port))
    print(f"listening on {args.listen} -> {args.target}", flush=True)
    async with server:
        await asyncio.sleep(args.lifetime)
    print("lifetime over", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
