"""A minimal Faust app for the stack test: counts words per key in a table and reports each
new count to an output topic. Topics and broker come from the environment."""

import os

import faust

app = faust.App(
    os.environ["FC_APP_ID"],
    broker=f"kafka://{os.environ['FC_BOOTSTRAP']}",
    store="memory://",
    topic_partitions=3,
    topic_replication_factor=1,
    web_enabled=False,
)
raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
source = app.topic(os.environ["FC_IN"], **raw)
sink = app.topic(os.environ["FC_OUT"], **raw)
counts = app.Table("counts", default=int, partitions=3)


@app.agent(source)
async def count(stream):
    async for word in stream:
        w = word.decode()
        counts[w] += 1
        await sink.send(key=word, value=str(counts[w]).encode())
