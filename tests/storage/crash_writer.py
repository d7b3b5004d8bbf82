"""Child process of the crash test: create keys until killed, acknowledging each on stdout.

Usage: python crash_writer.py DB_PATH ROUND. Prints "ready" once the store is
open, then "KEY RV" after each create has returned (so it is durable).
"""

from __future__ import annotations

import asyncio
import sys

from kubesvc.storage.sqlite import SqliteStore

WRITERS = 4  # concurrent creators, so kills also land inside group commits


async def main(path: str, round_: int) -> None:
    store = await SqliteStore.open(path)
    out = sys.stdout
    out.write("ready\n")
    out.flush()

    async def writer(w: int) -> None:
        i = 0
        while True:
            key = f"/registry/crash/r{round_}-w{w}-{i}"
            obj = await store.create(key, {"metadata": {"name": key}, "data": "x" * (i % 300)})
            # One write() per line, so a kill cannot leave half an acknowledgement.
            out.write(f"{key} {obj['metadata']['resourceVersion']}\n")
            out.flush()
            i += 1

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
