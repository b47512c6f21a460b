package coap

import (
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// optRequestTag is the Request-Tag option [RFC 9175 §3.2], which tells
// block-wise transfers to the same resource apart.
const optRequestTag message.OptionID = 292

// block1Tokens lets go-coap reassemble Block1 uploads from clients that
// send each block with a new token, as libcoap does (tokens are not
// required to match across the blocks of a transfer, RFC 9175 §3.3):
// go-coap keys reassembly by token, so later blocks are given the token of
// block 0 (and their responses get their own back).
type block1Tokens struct {
	mu sync.Mutex
	m  map[string]block1Transfer
}

type block1Transfer struct {
	token []byte
	at    time.Time
}

// block1TokenLimit bounds the transfers tracked at once; beyond it the
// stalest entries go.
const block1TokenLimit = 4096

// canonical returns the token a Block1 request must carry for go-coap to
// append it to its transfer, or nil to leave the request alone.
func (bt *block1Tokens) canonical(peer string, r *pool.Message, lifetime time.Duration) []byte {
	if r.Code() != codes.POST && r.Code() != codes.PUT {
		return nil
	}
	v, err := r.GetOptionUint32(message.Block1)
	if err != nil {
		return nil
	}
	_, num, more, err := blockwise.DecodeBlockOption(v)
	if err != nil || len(r.Token()) == 0 {
		return nil
	}
	key := transferKey(peer, r)
	now := time.Now()
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.m == nil {
		bt.m = make(map[string]block1Transfer)
	}
	if num == 0 {
		if more {
			bt.pruneLocked(now, lifetime)
			bt.m[key] = block1Transfer{token: append([]byte(nil), r.Token()...), at: now}
		}
		return nil
	}
	x, ok := bt.m[key]
	if !ok || now.Sub(x.at) > lifetime {
		return nil
	}
	if more {
		bt.m[key] = block1Transfer{token: x.token, at: now}
	} else {
		delete(bt.m, key)
	}
	if string(x.token) == string(r.Token()) {
		return nil
	}
	return x.token
}

func (bt *block1Tokens) pruneLocked(now time.Time, lifetime time.Duration) {
	if len(bt.m) < block1TokenLimit {
		return
	}
	for k, x := range bt.m {
		if now.Sub(x.at) > lifetime || len(bt.m) >= block1TokenLimit {
			delete(bt.m, k)
		}
	}
}

// transferKey identifies a block-wise upload: the client endpoint, the
// request URI and the Request-Tag.
func transferKey(peer string, r *pool.Message) string {
	var b strings.Builder
	b.WriteString(peer)
	for _, o := range r.Options() {
		switch o.ID {
		case message.URIPath, message.URIQuery, optRequestTag:
			b.WriteByte(0)
			b.WriteByte(byte(o.ID))
			b.Write(o.Value)
		}
	}
	return b.String()
}
