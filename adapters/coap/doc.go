// Package coap is iotgw's CoAP publish/subscribe front end (RFC 7252,
// Observe RFC 7641, block-wise RFC 7959) on go-coap v3.
package coap

import (
	_ "github.com/plgd-dev/go-coap/v3" // pinned v3.5.1; see adapters/coap
)
