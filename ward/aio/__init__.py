"""The asyncio client for Ward and etcd: `ward.Client`'s calls as coroutines over `grpc.aio`.

    import asyncio
    from ward.aio import Client

    async def main() -> None:
        async with Client("127.0.0.1:2379") as client:
            await client.put("greeting", "hello")
            print((await client.get("greeting")).kvs[0].value)
            async with client.watch("config/", prefix=True) as watcher:
                async for resp in watcher:
                    ...

    asyncio.run(main())

A client belongs to the event loop it is first used in; close it (`await client.close()` or
`async with`) before that loop ends, so that its channels and background tasks end with it.
"""

from __future__ import annotations

from ward.aio.client import Client
from ward.aio.lease import KeepAlive
from ward.aio.watch import Watcher

__all__ = ["Client", "KeepAlive", "Watcher"]
