"""The framework floor: aiohttp answering POST /v1/contacts with a fixed decision-sized JSON body.

Same worker count and `reuse_port` as the gateway, same load generator, so decide/floor is a ratio
that holds on a noisy machine. `python -m bench.floor --port P --workers N`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal

import uvloop
from aiohttp import web

# The shape of a real decision, so both servers send replies of about the same size.
BODY = json.dumps(
    {
        "contact_id": "00000000-0000-4000-8000-000000000000",
        "action": "route",
        "target": {"type": "queue", "id": "general"},
        "flagged": False,
        "banner": None,
        "customer_message": None,
        "matched": {"customer_ids": [], "case_id": None, "representative_of": []},
        "reasons": [{"source": "rule", "id": "general", "because": "Everything goes to the general queue"}],
        "ruleset_version": 1,
        "degraded": False,
    }
).encode()


async def contact(request: web.Request) -> web.Response:
    await request.read()  # the gateway reads the body too
    return web.Response(body=BODY, status=201, content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


def _worker(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/contacts", contact)
    app.router.add_get("/readyz", ready)
    # The same event loop as the gateway's workers (gateway/serve.py), so the ratio compares like with like.
    web.run_app(
        app, host="127.0.0.1", port=port, reuse_port=True, print=None, access_log=None, loop=uvloop.new_event_loop()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(args.port,)) for _ in range(args.workers)]
    for p in procs:
        p.start()

    def stop(signum: int, frame: object) -> None:
        for p in procs:
            p.terminate()

    signal.signal(signal.SIGTERM, stop)
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
