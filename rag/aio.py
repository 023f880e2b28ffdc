"""Small asyncio helpers shared by the packages that fan work out to an HTTP endpoint (teacher, judge)."""

from __future__ import annotations


async def run_all(workers: list) -> None:
    """Run the workers (coroutines) concurrently; on the first failure cancel the rest and raise it."""
    import asyncio

    tasks = [asyncio.ensure_future(w) for w in workers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()
