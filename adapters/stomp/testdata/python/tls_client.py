"""A python3-stomp (stomp.py) client over TLS, driven by tls_test.go.

    tls_client.py HOST PORT CAFILE TOPIC_IN TOPIC_OUT [CERTFILE KEYFILE]

It connects to stomp.tls trusting CAFILE (presenting CERTFILE when
given) with a login the gateway is to ignore when it names clients by
their certificates, subscribes to TOPIC_IN, sends "ready" to TOPIC_OUT
with a receipt, answers the first message on TOPIC_IN with
"got:<body>" on TOPIC_OUT, and prints one JSON line with what it saw.
"""
import json
import queue
import sys

import stomp

host, port, cafile, topic_in, topic_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
certfile = sys.argv[6] if len(sys.argv) > 7 else None
keyfile = sys.argv[7] if len(sys.argv) > 7 else None
events = queue.Queue()


class Listener(stomp.ConnectionListener):
    def on_message(self, frame):
        events.put(("message", frame))

    def on_receipt(self, frame):
        events.put(("receipt", frame))

    def on_error(self, frame):
        events.put(("error", frame))


def expect(kind):
    ev = events.get(timeout=10)
    if ev[0] != kind:
        raise SystemExit("got %s %r %r, want %s" % (ev[0], ev[1].headers, ev[1].body, kind))
    return ev[1]


conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), auto_content_length=True)
conn.set_ssl(for_hosts=[(host, port)], ca_certs=cafile, cert_file=certfile, key_file=keyfile)
conn.set_listener("", Listener())
conn.connect("mallory", "wrong", wait=True)
conn.subscribe(topic_in, id="sub-1", ack="auto")
conn.send(topic_out, "ready", headers={"receipt": "r-ready"})
receipt = expect("receipt")
message = expect("message")
conn.send(topic_out, "got:" + message.body, headers={"receipt": "r-got"})
expect("receipt")
print(json.dumps({"receipt": receipt.headers.get("receipt-id"), "body": message.body,
                  "destination": message.headers.get("destination")}))
sys.stdout.flush()
conn.disconnect(receipt="bye")
