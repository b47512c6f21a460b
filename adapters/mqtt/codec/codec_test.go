package codec_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
)

var errEOF = io.EOF

func TestReadPacketIOErrors(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		want error
		n    int
	}{
		{"empty stream", nil, io.EOF, 0},
		{"inside remaining length", []byte{0x30, 0x80}, io.ErrUnexpectedEOF, 2},
		{"inside body", []byte{0x30, 0x05, 0x00, 0x01}, io.ErrUnexpectedEOF, 4},
		{"inside large body", append([]byte{0x30, 0x80, 0x80, 0x10}, make([]byte, 100000)...), io.ErrUnexpectedEOF, 100004},
	}
	for _, c := range cases {
		_, n, err := readOne(c.raw, codec.V311, 0)
		if !errors.Is(err, c.want) || n != c.n {
			t.Errorf("%s: n=%d err=%v; want n=%d %v", c.name, n, err, c.n, c.want)
		}
		if _, ok := codec.CodeOf(err); ok {
			t.Errorf("%s: I/O error %v reported as a protocol error", c.name, err)
		}
	}
}

// errReader fails with a non-EOF error after its data, to check that other
// I/O errors pass through unchanged.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadPacketPassesIOErrorThrough(t *testing.T) {
	boom := errors.New("connection reset")
	r := bufio.NewReader(&errReader{data: []byte{0x30, 0x05, 0x00}, err: boom})
	_, n, err := codec.ReadPacket(r, codec.V311, 0)
	if !errors.Is(err, boom) || n != 3 {
		t.Fatalf("n=%d err=%v; want 3, wrapped %v", n, err, boom)
	}
}

// TestReadPacketTooLargeSkipsBody checks that an oversized packet is refused
// from its header alone: the body bytes stay unread.
func TestReadPacketTooLargeSkipsBody(t *testing.T) {
	raw := []byte{0x30, 0x0A, 0x00, 0x01, 't', 1, 2, 3, 4, 5, 6, 7}
	r := bufio.NewReader(bytes.NewReader(raw))
	_, n, err := codec.ReadPacket(r, codec.V311, 11)
	var e *codec.Error
	if !errors.As(err, &e) || e.Code != codec.PacketTooLarge || n != 2 {
		t.Fatalf("n=%d err=%v; want PacketTooLarge after 2 bytes", n, err)
	}
	if r.Buffered() != len(raw)-2 {
		t.Errorf("%d bytes still buffered, want %d", r.Buffered(), len(raw)-2)
	}
	// Exactly at the limit is fine.
	if _, _, err := readOne(raw, codec.V311, 12); err != nil {
		t.Errorf("packet of exactly maxSize refused: %v", err)
	}
}

func TestReadPacketLargeBody(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 50000) // 500 kB: the incremental path
	p := &codec.Publish{QoS: 1, PacketID: 9, Topic: "big", Payload: payload}
	raw, err := codec.Append(nil, p, codec.V5)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := readOne(raw, codec.V5, 0)
	if err != nil || n != len(raw) || !reflect.DeepEqual(got, p) {
		t.Fatalf("n=%d err=%v equal=%v", n, err, reflect.DeepEqual(got, p))
	}
}

// TestReadPacketBodiesAreFresh checks the aliasing promise: a payload
// returned by one read is untouched by the next.
func TestReadPacketBodiesAreFresh(t *testing.T) {
	a, _ := codec.Append(nil, &codec.Publish{Topic: "a", Payload: []byte("first")}, codec.V311)
	b, _ := codec.Append(nil, &codec.Publish{Topic: "b", Payload: []byte("other")}, codec.V311)
	r := bufio.NewReader(bytes.NewReader(append(a, b...)))
	p1, _, _ := codec.ReadPacket(r, codec.V311, 0)
	if _, _, err := codec.ReadPacket(r, codec.V311, 0); err != nil {
		t.Fatal(err)
	}
	if got := string(p1.(*codec.Publish).Payload); got != "first" {
		t.Fatalf("first payload became %q", got)
	}
}

func TestErrorMatching(t *testing.T) {
	_, err := codec.Decode(0x36, []byte{0, 1, 't'}, codec.V311)
	if !errors.Is(err, &codec.Error{Code: codec.MalformedPacket}) {
		t.Errorf("errors.Is by code failed for %v", err)
	}
	if errors.Is(err, &codec.Error{Code: codec.ProtocolError}) {
		t.Errorf("errors.Is matched the wrong code for %v", err)
	}
	if !strings.Contains(err.Error(), "MQTT-3.3.1-4") {
		t.Errorf("error %q does not cite its rule", err)
	}
	if _, ok := codec.CodeOf(io.EOF); ok {
		t.Error("CodeOf(io.EOF) reported a reason code")
	}
	if s := codec.ReasonCode(0x77).String(); s != "reason code 0x77" {
		t.Errorf("unknown code String() = %q", s)
	}
	if codec.TypeAuth.String() != "AUTH" || codec.PacketType(99).String() != "INVALID" {
		t.Error("PacketType.String mismatch")
	}
	if !codec.PacketTooLarge.IsError() || codec.GrantedQoS2.IsError() {
		t.Error("IsError mismatch")
	}
}

func TestDecodeRejectsUnknownVersion(t *testing.T) {
	_, err := codec.Decode(0xC0, nil, 7)
	if code, _ := codec.CodeOf(err); code != codec.UnsupportedProtocolVersion {
		t.Fatalf("err = %v", err)
	}
	if codec.Size(&codec.Pingreq{}, 7) != -1 {
		t.Error("Size accepted version 7")
	}
}

func TestProperties(t *testing.T) {
	var p codec.Properties
	if !p.Empty() || p.Has(codec.PropSessionExpiry) {
		t.Fatal("zero Properties not empty")
	}
	p.SessionExpiry = 0
	p.Set(codec.PropSessionExpiry)
	if !p.Has(codec.PropSessionExpiry) || p.Empty() {
		t.Error("Set did not mark presence of a zero value")
	}
	p.Set(codec.PropUser) // presence of User comes from the slice
	if p.Has(codec.PropUser) {
		t.Error("Set(PropUser) made an empty User list present")
	}
	p.User = []codec.UserProperty{{Key: "k", Value: "v"}}
	p.SubscriptionIDs = []uint32{4}
	if !p.Has(codec.PropUser) || !p.Has(codec.PropSubscriptionID) {
		t.Error("repeatable properties not present")
	}
	p.ReasonString = "x"
	p.Set(codec.PropReasonString)
	p.Clear(codec.PropReasonString)
	p.Clear(codec.PropUser)
	p.Clear(codec.PropSubscriptionID)
	p.Clear(codec.PropSessionExpiry)
	if !p.Empty() || p.ReasonString != "" || p.User != nil {
		t.Errorf("Clear left %#v", p)
	}
	if m := codec.PropMask(codec.PropUser, codec.PropTopicAlias); m != 1<<codec.PropTopicAlias {
		t.Errorf("PropMask = %x", m)
	}
}

func TestAppendBehaviour(t *testing.T) {
	t.Run("appends to existing content", func(t *testing.T) {
		dst := []byte("prefix")
		out, err := codec.Append(dst, &codec.Pingreq{}, codec.V311)
		if err != nil || string(out) != "prefix\xC0\x00" {
			t.Fatalf("%q, %v", out, err)
		}
	})
	t.Run("reused buffer does not allocate", func(t *testing.T) {
		p := &codec.Publish{QoS: 1, PacketID: 1, Topic: "a/b", Payload: []byte("x"),
			Props: codec.Properties{Present: codec.PropMask(codec.PropMessageExpiry), MessageExpiry: 5,
				User: []codec.UserProperty{{Key: "k", Value: "v"}}}}
		buf := make([]byte, 0, 128)
		allocs := testing.AllocsPerRun(100, func() { buf, _ = codec.Append(buf[:0], p, codec.V5) })
		if allocs != 0 {
			t.Errorf("Append allocated %v times per run", allocs)
		}
	})
	t.Run("v3 suback failure codes collapse to 0x80", func(t *testing.T) {
		out, err := codec.Append(nil, &codec.Suback{PacketID: 1, ReasonCodes: []byte{0x01, 0x87, 0xA2}}, codec.V311)
		if err != nil || !bytes.Equal(out, []byte{0x90, 0x05, 0, 1, 0x01, 0x80, 0x80}) {
			t.Fatalf("% x, %v", out, err)
		}
	})
	t.Run("v5 fields dropped for 3.1.1", func(t *testing.T) {
		p := &codec.Publish{Topic: "t", Props: codec.Properties{Present: codec.PropMask(codec.PropContentType), ContentType: "x"}}
		out, err := codec.Append(nil, p, codec.V311)
		if err != nil || !bytes.Equal(out, []byte{0x30, 0x03, 0, 1, 't'}) {
			t.Fatalf("% x, %v", out, err)
		}
		s := &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a", QoS: 1, NoLocal: true, RetainHandling: 2}}}
		out, err = codec.Append(nil, s, codec.V311)
		if err != nil || !bytes.Equal(out, []byte{0x82, 0x06, 0, 1, 0, 1, 'a', 0x01}) {
			t.Fatalf("% x, %v", out, err)
		}
		d, err := codec.Append(nil, &codec.Disconnect{ReasonCode: codec.ServerShuttingDown}, codec.V311)
		if err != nil || !bytes.Equal(d, []byte{0xE0, 0x00}) {
			t.Fatalf("% x, %v", d, err)
		}
	})
	t.Run("will properties reused for PUBLISH", func(t *testing.T) {
		will := codec.Properties{Present: codec.PropMask(codec.PropWillDelay, codec.PropContentType),
			WillDelay: 30, ContentType: "c"}
		out, err := codec.Append(nil, &codec.Publish{Topic: "t", Props: will}, codec.V5)
		want := []byte{0x30, 0x08, 0, 1, 't', 0x04, 0x03, 0, 1, 'c'}
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("% x, %v; want % x", out, err, want)
		}
	})
	t.Run("empty protocol name defaults from level", func(t *testing.T) {
		out, err := codec.Append(nil, &codec.Connect{ProtocolLevel: codec.V31, ClientID: "c"}, 0)
		if err != nil || !bytes.HasPrefix(out[2:], []byte("\x00\x06MQIsdp\x03")) {
			t.Fatalf("% x, %v", out, err)
		}
	})
}

func TestAppendRefusesInvalid(t *testing.T) {
	cases := []struct {
		name    string
		p       codec.Packet
		version byte
		want    codec.ReasonCode
	}{
		{"publish qos 3", &codec.Publish{QoS: 3, PacketID: 1, Topic: "t"}, codec.V311, codec.MalformedPacket},
		{"publish dup qos 0", &codec.Publish{Dup: true, Topic: "t"}, codec.V311, codec.ProtocolError},
		{"publish packet id 0", &codec.Publish{QoS: 1, Topic: "t"}, codec.V311, codec.ProtocolError},
		{"publish v5 empty topic", &codec.Publish{}, codec.V5, codec.ProtocolError},
		{"publish topic alias 0", &codec.Publish{Topic: "t", Props: codec.Properties{Present: codec.PropMask(codec.PropTopicAlias)}}, codec.V5, codec.TopicAliasInvalid},
		{"publish long topic", &codec.Publish{Topic: strings.Repeat("a", 70000)}, codec.V311, codec.MalformedPacket},
		{"subscribe empty", &codec.Subscribe{PacketID: 1}, codec.V311, codec.ProtocolError},
		{"subscribe two ids", &codec.Subscribe{PacketID: 1, Props: codec.Properties{SubscriptionIDs: []uint32{1, 2}},
			Subscriptions: []codec.Subscription{{Filter: "a"}}}, codec.V5, codec.ProtocolError},
		{"subscribe retain handling 3", &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a", RetainHandling: 3}}}, codec.V5, codec.ProtocolError},
		{"unsubscribe id 0", &codec.Unsubscribe{Filters: []string{"a"}}, codec.V311, codec.ProtocolError},
		{"connack v3 code 0x87", &codec.Connack{ReasonCode: codec.NotAuthorized}, codec.V311, codec.ProtocolError},
		{"connack session with failure", &codec.Connack{SessionPresent: true, ReasonCode: 0x05}, codec.V311, codec.ProtocolError},
		{"puback wrong code", &codec.Ack{Kind: codec.TypePuback, PacketID: 1, ReasonCode: codec.PacketIDNotFound}, codec.V5, codec.ProtocolError},
		{"ack without kind", &codec.Ack{PacketID: 1}, codec.V311, codec.ProtocolError},
		{"auth before v5", &codec.Auth{}, codec.V311, codec.ProtocolError},
		{"auth without method", &codec.Auth{ReasonCode: codec.ContinueAuthentication}, codec.V5, codec.ProtocolError},
		{"connect password no user v311", &codec.Connect{ProtocolLevel: codec.V311, PasswordFlag: true}, 0, codec.ProtocolError},
		{"connect level mismatch", &codec.Connect{ProtocolLevel: codec.V311}, codec.V5, codec.ProtocolError},
		{"connect unknown level", &codec.Connect{ProtocolLevel: 9}, 0, codec.UnsupportedProtocolVersion},
		{"connect wrong name", &codec.Connect{ProtocolName: "MQIsdp", ProtocolLevel: codec.V311}, 0, codec.UnsupportedProtocolVersion},
		{"receive maximum 0", &codec.Connect{ProtocolLevel: codec.V5, Props: codec.Properties{Present: codec.PropMask(codec.PropReceiveMaximum)}}, 0, codec.ProtocolError},
		{"nil packet", nil, codec.V311, codec.ProtocolError},
	}
	for _, c := range cases {
		dst := []byte("keep")
		out, err := codec.Append(dst, c.p, c.version)
		if code, ok := codec.CodeOf(err); !ok || code != c.want {
			t.Errorf("%s: err %v; want code %v", c.name, err, c.want)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed to %q", c.name, out)
		}
		if codec.Size(c.p, c.version) != -1 {
			t.Errorf("%s: Size did not report -1", c.name)
		}
	}
}
