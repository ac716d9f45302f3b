"""A Faust agent that does nothing but count messages (take_events, as the rating agent does):
the ceiling of Faust's per-message path on this machine, a baseline of bench_pipeline.py.

    NOOP_BOOTSTRAP=... NOOP_TOPIC=... NOOP_N=... NOOP_OUT=result.json python noop_agent.py worker
"""

import json
import os
import time

import faust

N = int(os.environ["NOOP_N"])
app = faust.App(
    f"noop-{os.getpid()}",
    broker=f"kafka://{os.environ['NOOP_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    broker_max_poll_records=5000,
    consumer_max_fetch_size=16 * 1024 * 1024,
    stream_buffer_maxsize=4000,
)
topic = app.topic(
    os.environ["NOOP_TOPIC"], key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
seen = {"n": 0, "t0": None}


@app.agent(topic)
async def count(stream):
    async for batch in stream.take_events(2000, within=0.25):
        if seen["t0"] is None:
            seen["t0"] = time.perf_counter()
        seen["n"] += len(batch)
        if seen["n"] >= N:
            rate = seen["n"] / (time.perf_counter() - seen["t0"])
            with open(os.environ["NOOP_OUT"], "w") as f:
                json.dump({"messages": seen["n"], "messages_per_s": rate}, f)
            os._exit(0)


if __name__ == "__main__":
    app.main()
