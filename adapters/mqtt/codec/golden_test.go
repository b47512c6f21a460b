package codec_test

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/adapters/mqtt/codec/codectest"
)

// encodeVersion is the version to hand Append for p when it was read at
// version v: a CONNECT carries its own level.
func encodeVersion(p codec.Packet, v byte) byte {
	if c, ok := p.(*codec.Connect); ok {
		return c.ProtocolLevel
	}
	return v
}

func readOne(raw []byte, version byte, maxSize int) (codec.Packet, int, error) {
	return codec.ReadPacket(bufio.NewReader(bytes.NewReader(raw)), version, maxSize)
}

func TestGoldenNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range codectest.Goldens() {
		if seen[g.Name] {
			t.Errorf("duplicate golden name %q", g.Name)
		}
		seen[g.Name] = true
		if g.Valid() != (g.Packet != nil) {
			t.Errorf("%s: a valid golden needs a Packet and an invalid one must not have one", g.Name)
		}
	}
}

func TestGoldenValid(t *testing.T) {
	for _, g := range codectest.Goldens() {
		if !g.Valid() {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			p, n, err := readOne(g.Raw, g.Version, g.MaxSize)
			if err != nil {
				t.Fatalf("ReadPacket: %v", err)
			}
			if n != len(g.Raw) {
				t.Errorf("ReadPacket consumed %d bytes, want %d", n, len(g.Raw))
			}
			if !reflect.DeepEqual(p, g.Packet) {
				t.Fatalf("ReadPacket:\n got %#v\nwant %#v", p, g.Packet)
			}

			h, rl, hn, err := codec.ParseHeader(g.Raw)
			if err != nil || hn+rl != len(g.Raw) {
				t.Fatalf("ParseHeader = %d, %d, %v for %d raw bytes", rl, hn, err, len(g.Raw))
			}
			p, err = codec.Decode(h, g.Raw[hn:], g.Version)
			if err != nil || !reflect.DeepEqual(p, g.Packet) {
				t.Fatalf("Decode = %#v, %v", p, err)
			}
			if _, ok := p.(*codec.Connect); ok && g.Version != 0 {
				// Before CONNECT the packet's own level must be picked up.
				if p0, err := codec.Decode(h, g.Raw[hn:], 0); err != nil || !reflect.DeepEqual(p0, g.Packet) {
					t.Errorf("Decode at version 0 = %#v, %v", p0, err)
				}
			}

			v := encodeVersion(g.Packet, g.Version)
			enc, err := codec.Append(nil, g.Packet, v)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if size := codec.Size(g.Packet, v); size != len(enc) {
				t.Errorf("Size = %d, Append wrote %d bytes", size, len(enc))
			}
			if g.DecodeOnly {
				if bytes.Equal(enc, g.Raw) {
					t.Errorf("DecodeOnly golden re-encodes identically; drop the flag")
				}
				if p2, _, err := readOne(enc, g.Version, 0); err != nil || !reflect.DeepEqual(p2, g.Packet) {
					t.Errorf("canonical form % x decodes to %#v, %v", enc, p2, err)
				}
				return
			}
			if !bytes.Equal(enc, g.Raw) {
				t.Errorf("Append:\n got % x\nwant % x", enc, g.Raw)
			}
		})
	}
}

func TestGoldenInvalid(t *testing.T) {
	for _, g := range codectest.Goldens() {
		if g.Valid() {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			p, _, err := readOne(g.Raw, g.Version, g.MaxSize)
			code, ok := codec.CodeOf(err)
			if !ok || code != g.WantErr {
				t.Fatalf("ReadPacket = %#v, %v; want code %v", p, err, g.WantErr)
			}
			if _, isConnect := p.(*codec.Connect); p != nil && !isConnect {
				t.Errorf("ReadPacket returned packet %#v with an error", p)
			}
			// Decode must agree whenever the packet gets as far as Decode.
			h, rl, hn, err := codec.ParseHeader(g.Raw)
			if err != nil || g.MaxSize != 0 || hn+rl != len(g.Raw) {
				return
			}
			_, err = codec.Decode(h, g.Raw[hn:], g.Version)
			if code, ok := codec.CodeOf(err); !ok || code != g.WantErr {
				t.Errorf("Decode error %v; want code %v", err, g.WantErr)
			}
		})
	}
}

// TestGoldenCoverage keeps the table honest: every packet type in 3.1.1 and
// 5.0, CONNECT in 3.1, and every MQTT 5 property at least once.
func TestGoldenCoverage(t *testing.T) {
	types := map[byte]map[codec.PacketType]bool{codec.V31: {}, codec.V311: {}, codec.V5: {}}
	props := map[codec.PropID]bool{}
	note := func(p *codec.Properties) {
		for id := codec.PropID(1); id < 64; id++ {
			if p.Has(id) {
				props[id] = true
			}
		}
	}
	for _, g := range codectest.Goldens() {
		if !g.Valid() {
			continue
		}
		types[encodeVersion(g.Packet, g.Version)][g.Packet.Type()] = true
		switch p := g.Packet.(type) {
		case *codec.Connect:
			note(&p.Props)
			note(&p.WillProps)
		case *codec.Connack:
			note(&p.Props)
		case *codec.Publish:
			note(&p.Props)
		case *codec.Ack:
			note(&p.Props)
		case *codec.Subscribe:
			note(&p.Props)
		case *codec.Suback:
			note(&p.Props)
		case *codec.Unsubscribe:
			note(&p.Props)
		case *codec.Unsuback:
			note(&p.Props)
		case *codec.Disconnect:
			note(&p.Props)
		case *codec.Auth:
			note(&p.Props)
		}
	}
	if !types[codec.V31][codec.TypeConnect] {
		t.Error("no MQTT 3.1 CONNECT golden")
	}
	for pt := codec.TypeConnect; pt <= codec.TypeAuth; pt++ {
		if pt != codec.TypeAuth && !types[codec.V311][pt] {
			t.Errorf("no MQTT 3.1.1 %v golden", pt)
		}
		if !types[codec.V5][pt] {
			t.Errorf("no MQTT 5 %v golden", pt)
		}
	}
	all := []codec.PropID{
		codec.PropPayloadFormat, codec.PropMessageExpiry, codec.PropContentType, codec.PropResponseTopic,
		codec.PropCorrelationData, codec.PropSubscriptionID, codec.PropSessionExpiry, codec.PropAssignedClientID,
		codec.PropServerKeepAlive, codec.PropAuthMethod, codec.PropAuthData, codec.PropRequestProblemInfo,
		codec.PropWillDelay, codec.PropRequestResponseInfo, codec.PropResponseInfo, codec.PropServerReference,
		codec.PropReasonString, codec.PropReceiveMaximum, codec.PropTopicAliasMaximum, codec.PropTopicAlias,
		codec.PropMaximumQoS, codec.PropRetainAvailable, codec.PropUser, codec.PropMaximumPacketSize,
		codec.PropWildcardSubAvailable, codec.PropSubIDAvailable, codec.PropSharedSubAvailable,
	}
	for _, id := range all {
		if !props[id] {
			t.Errorf("no golden carries property 0x%02X", byte(id))
		}
	}
}

// TestGoldenStream reads every valid golden of a version back to back from
// one stream, as a connection would deliver them, checking that each read
// consumes exactly one packet.
func TestGoldenStream(t *testing.T) {
	for _, v := range []byte{codec.V31, codec.V311, codec.V5} {
		var stream []byte
		var want []codec.Packet
		for _, g := range codectest.Goldens() {
			if g.Valid() && g.Version == v {
				stream = append(stream, g.Raw...)
				want = append(want, g.Packet)
			}
		}
		r := bufio.NewReaderSize(bytes.NewReader(stream), 16)
		total := 0
		for i, w := range want {
			p, n, err := codec.ReadPacket(r, v, 0)
			if err != nil || !reflect.DeepEqual(p, w) {
				t.Fatalf("v%d packet %d: %#v, %v; want %#v", v, i, p, err, w)
			}
			total += n
		}
		if total != len(stream) {
			t.Errorf("v%d: consumed %d of %d bytes", v, total, len(stream))
		}
		if _, n, err := codec.ReadPacket(r, v, 0); !errors.Is(err, errEOF) || n != 0 {
			t.Errorf("v%d: after the last packet got n=%d, %v; want io.EOF", v, n, err)
		}
	}
}

func TestUnsupportedConnectReturnsPartialConnect(t *testing.T) {
	for _, g := range codectest.Goldens() {
		if g.WantErr != codec.UnsupportedProtocolVersion {
			continue
		}
		p, _, _ := readOne(g.Raw, 0, 0)
		c, ok := p.(*codec.Connect)
		if !ok {
			t.Errorf("%s: got %#v, want a partial *Connect", g.Name, p)
			continue
		}
		if c.ProtocolName == "" || c.ProtocolLevel == 0 {
			t.Errorf("%s: partial CONNECT lacks name or level: %#v", g.Name, c)
		}
	}
}
