package mqttsn

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/core"
)

// FuzzParsePlain checks the SASL PLAIN decoder of the AUTH extension.
func FuzzParsePlain(f *testing.F) {
	f.Add([]byte("\x00user\x00pass"))
	f.Add([]byte("authz\x00user\x00"))
	f.Add([]byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		user, pass, ok := parsePlain(data)
		if ok && (user == "" || len(pass) > len(data)) {
			t.Fatalf("accepted %q as user %q", data, user)
		}
	})
}

// FuzzSession feeds a sequence of datagrams from three peers through the
// whole gateway (decode, dispatch, state machines, core calls): nothing
// may panic, whatever the order or content. The input is split into
// datagrams by length prefixes; the peer of each is its first byte mod 3.
func FuzzSession(f *testing.F) {
	seq := func(ms ...codec.Message) []byte {
		var out []byte
		for i, m := range ms {
			raw, _ := codec.Encode(m)
			out = append(out, byte(len(raw)+1), byte(i%2))
			out = append(out, raw...)
		}
		return out
	}
	f.Add(seq(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: 1, Duration: 5, ClientID: "a"},
		&codec.Register{MsgID: 1, TopicName: "t/a"},
		&codec.Publish{Flags: codec.Flags{QoS: 2}, TopicID: 1, MsgID: 2, Data: []byte("x")},
		&codec.MsgIDOnly{Kind: codec.TypePubrel, MsgID: 2},
		&codec.Subscribe{Kind: codec.TypeSubscribe, Flags: codec.Flags{QoS: 1}, MsgID: 3, TopicName: "t/+"},
		&codec.Disconnect{HasDuration: true, Duration: 1},
		&codec.Pingreq{ClientID: "a"}))
	f.Add(seq(&codec.Auth{Method: "PLAIN", Data: []byte("\x00u\x00p")},
		&codec.Connect{Flags: codec.Flags{Will: true}, ProtocolID: 1, ClientID: "b"},
		&codec.WillTopic{Kind: codec.TypeWillTopic, Topic: "w"},
		&codec.WillMsg{Kind: codec.TypeWillMsg, Msg: []byte("m")},
		&codec.WillTopic{Kind: codec.TypeWillTopicUpd},
		&codec.Publish{Flags: codec.Flags{QoS: 3, TopicIDType: codec.TopicShort}, TopicID: 0x6162}))
	f.Add([]byte{5, 0, 3, 0x16, 'x', 4, 1, 0xFE, 0, 2, 0x16})

	s, stop := fuzzServer(f)
	defer stop()
	peers := []*net.UDPAddr{{IP: net.IPv4(127, 0, 0, 1), Port: 1}, {IP: net.IPv4(127, 0, 0, 1), Port: 2},
		{IP: net.IPv4(127, 0, 0, 2), Port: 1}}
	f.Fuzz(func(t *testing.T, in []byte) {
		for len(in) > 1 {
			n := int(in[0])
			if n == 0 || n > len(in)-1 {
				n = len(in) - 1
			}
			chunk := in[1 : 1+n]
			in = in[1+n:]
			s.dispatchMu.Lock()
			s.datagram(append([]byte(nil), chunk[1:]...), peer{addr: peers[int(chunk[0])%len(peers)]}, 0)
			s.dispatchMu.Unlock()
		}
	})
}

// fuzzServer starts a gateway whose socket is bound (replies go to the
// fuzz peers' unused loopback ports) and whose datagram entry point the
// fuzzer calls directly.
func fuzzServer(f *testing.F) (*Server, func()) { return fuzzServerT(f) }

func fuzzServerT(f testing.TB) (*Server, func()) {
	cfg := core.DefaultConfig()
	cfg.SysInterval = 0
	b, err := core.New(cfg, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	sc := DefaultConfig()
	sc.UDP = "127.0.0.1:0"
	sc.NewSessionRate = 0
	sc.RetryInterval = 10 * time.Millisecond
	sc.Predefined = []PredefinedTopic{{ID: 1, Topic: "p"}}
	s := New(sc, zap.NewNop())
	if err := s.Start(context.Background(), b); err != nil {
		f.Fatal(err)
	}
	return s, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		b.Close()
	}
}
