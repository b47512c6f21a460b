"""A python3-stomp (stomp.py) client driven by stomp_python_test.go.

It subscribes to py/in with client-individual acks, announces itself by
sending "ready" to py/out (with an application header and a content type),
NACKs the first message the Go side publishes to py/in, ACKs its
redelivery, commits a transaction of two SENDs, and prints one JSON line
with what it saw.
"""
import json
import queue
import sys

import stomp

host, port = sys.argv[1], int(sys.argv[2])
inbox = queue.Queue()


class Listener(stomp.ConnectionListener):
    def on_message(self, frame):
        inbox.put(frame)

    def on_error(self, frame):
        inbox.put(frame)


conn = stomp.Connection12([(host, port)], heartbeats=(1000, 1000), auto_content_length=True)
conn.set_listener("", Listener())
conn.connect("user", "pass", wait=True, headers={"client-id": "python-client"})
conn.subscribe("py/in", id="sub-1", ack="client-individual")
conn.send("py/out", "ready", content_type="text/plain", headers={"x-lang": "python", "receipt": "r-ready"})

first = inbox.get(timeout=10)
conn.nack(first.headers["ack"])
second = inbox.get(timeout=10)
conn.ack(second.headers["ack"])

tx = conn.begin()
conn.send("py/tx", "t1", transaction=tx)
conn.send("py/tx", "t2", transaction=tx)
conn.commit(tx)

print(json.dumps({
    "first": {"body": first.body, "destination": first.headers.get("destination"),
              "subscription": first.headers.get("subscription"),
              "redelivered": first.headers.get("redelivered")},
    "second": {"body": second.body, "redelivered": second.headers.get("redelivered"),
               "same_id": second.headers.get("message-id") == first.headers.get("message-id")},
}))
sys.stdout.flush()
conn.disconnect(receipt="bye")
