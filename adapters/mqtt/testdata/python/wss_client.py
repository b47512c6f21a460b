"""A python3-paho-mqtt client over WebSocket and TLS, driven by
tls_clients_blackbox_test.go.

    wss_client.py HOST PORT PATH CAFILE TOPIC_IN TOPIC_OUT [CERTFILE KEYFILE]

It connects over wss:// trusting CAFILE (presenting CERTFILE when
given), subscribes to TOPIC_IN, announces itself with "ready" on
TOPIC_OUT, answers the first message on TOPIC_IN with "got:<payload>" on
TOPIC_OUT and prints one JSON line with what it saw.
"""
import json
import queue
import ssl
import sys

import paho.mqtt.client as mqtt

host, port, path, cafile, topic_in, topic_out = sys.argv[1:7]
certfile = sys.argv[7] if len(sys.argv) > 8 else None
keyfile = sys.argv[8] if len(sys.argv) > 8 else None
events = queue.Queue()

client = mqtt.Client(client_id="python-wss", transport="websockets", protocol=mqtt.MQTTv311)
client.ws_set_options(path=path)
client.tls_set(ca_certs=cafile, certfile=certfile, keyfile=keyfile, tls_version=ssl.PROTOCOL_TLS_CLIENT)
client.on_connect = lambda c, u, flags, rc: events.put(("connack", rc))
client.on_subscribe = lambda c, u, mid, granted: events.put(("suback", list(granted)))
client.on_message = lambda c, u, msg: events.put(("message", msg.topic, msg.payload.decode()))


def expect(kind):
    ev = events.get(timeout=10)
    if ev[0] != kind:
        raise SystemExit("got %r, want %s" % (ev, kind))
    return ev


client.connect(host, int(port), keepalive=30)
client.loop_start()
rc = expect("connack")[1]
if rc != 0:
    print(json.dumps({"connack": rc}))
    sys.exit(0)
client.subscribe(topic_in, qos=1)
granted = expect("suback")[1]
client.publish(topic_out, "ready", qos=1).wait_for_publish(10)
_, topic, payload = expect("message")
client.publish(topic_out, "got:" + payload, qos=1).wait_for_publish(10)
client.disconnect()
client.loop_stop()
print(json.dumps({"connack": rc, "granted": granted, "topic": topic, "payload": payload}))
