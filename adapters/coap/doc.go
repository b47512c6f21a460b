// Package coap is iotgw's CoAP publish/subscribe front end (RFC 7252,
// Observe RFC 7641, block-wise RFC 7959). The adapter reads its UDP socket
// itself and answers simple publishes and sends QoS 0 notifications on a
// fast path; everything else is handled by go-coap v3 (message codec,
// retransmission, block-wise transfer). The URI scheme follows EMQX's
// CoAP gateway.
//
// Resources:
//
//	POST|PUT /ps/{topic}?qos=&retain=&expiry=   publish; 2.04 Changed
//	GET      /ps/{filter} (Observe: 0)?qos=     subscribe; 2.05 then notifications
//	GET      /ps/{filter} (Observe: 1)          unsubscribe; 2.05
//	DELETE   /ps/{filter}                       unsubscribe; 2.02 Deleted
//	GET      /ps/{topic}                        retained message; 2.05 or 4.04
//	POST     /mqtt/connection?clientid=&username=&password=   connect; 2.01, token as payload
//	PUT      /mqtt/connection?clientid=&token=  heartbeat; 2.04
//	DELETE   /mqtt/connection?clientid=&token=  close; 2.02
//	GET      /.well-known/core                  resource list (RFC 6690)
//
// The topic is the Uri-Path segments after "ps" joined with "/" (so "#"
// must be percent-encoded in a URI, "%23"); segments still holding
// percent-encoding are decoded. Query keys have EMQX's short aliases: c
// (clientid), t (token), u (username), p (password), q (qos), r (retain),
// and e (expiry, seconds). In connection mode every request also carries
// clientid and token. Without a query qos, a CON request means QoS
// coap.default_qos_con and a NON request coap.default_qos_non.
//
// The Content-Format option maps to the MQTT 5 content type with the IANA
// registry names (50 ↔ "application/json", 0 ↔ "text/plain;charset=utf-8",
// ...); an unregistered number travels as the user property
// "coap-content-format".
//
// Notifications: every observation is a core subscription with its own
// subscription identifier, and deliveries reach it by that identifier.
// Each notification is 2.05 on the observation's token with an increasing
// Observe value and the message's Content-Format; CON for QoS 1/2 (its ACK
// acknowledges the delivery), NON for QoS 0 (coap.notify_type). An RST, or
// a CON notification that is never acknowledged, removes the observation
// (RFC 7641 §4.5). A notification to a wildcard observation carries the
// concrete topic as Location-Path options: "ps" followed by one option
// per topic level, e.g. Location-Path: ps, sensors, kitchen, temp for
// "sensors/kitchen/temp" (left out when a level exceeds 255 bytes).
// Notifications larger than coap.block_size carry their first block and an
// ETag; the client fetches the rest with GET and Block2 on the same URI.
package coap
