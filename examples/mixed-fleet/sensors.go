package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	coapopts "github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
)

// reading is what every sensor sends, as JSON.
type reading struct {
	Sensor string  `json:"sensor"`
	Via    string  `json:"via"`
	Kind   string  `json:"kind"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Seq    int     `json:"seq"`
}

// wave is a plausible, slowly changing sensor value.
func wave(base, amp float64, id, seq int) float64 {
	v := base + amp*math.Sin(float64(seq)/5+float64(id)) + rand.Float64()*amp/10
	return math.Round(v*10) / 10
}

// snSensor is a minimal MQTT-SN 1.2 client over UDP, built on the
// gateway's codec: CONNECT, REGISTER its topic, then QoS 1 PUBLISHes,
// each retransmitted (DUP) until its PUBACK arrives (§6.13).
type snSensor struct {
	conn  *net.UDPConn
	msgID uint16
}

const (
	snRetry      = time.Second // Tretry
	snMaxRetries = 5           // Nretry
)

func runSNSensor(ctx context.Context, addr string, id int, every time.Duration) error {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return err
	}
	defer conn.Close()
	s := &snSensor{conn: conn}
	clientID := fmt.Sprintf("sn-thermo-%d", id)
	keepAlive := uint16(max(every*3/time.Second, 10))
	if _, err := s.exchange(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: codec.ProtocolID12,
		Duration: keepAlive, ClientID: clientID}, codec.TypeConnack, 0); err != nil {
		return fmt.Errorf("%s: connect: %w", clientID, err)
	}
	topic := fmt.Sprintf("fleet/mqttsn/%d/temperature", id)
	mid := s.nextID()
	m, err := s.exchange(&codec.Register{MsgID: mid, TopicName: topic}, codec.TypeRegack, mid)
	if err != nil {
		return fmt.Errorf("%s: register: %w", clientID, err)
	}
	topicID := m.(*codec.Regack).TopicID
	tick := time.NewTicker(every)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		data, _ := json.Marshal(reading{Sensor: clientID, Via: "MQTT-SN", Kind: "temperature",
			Value: wave(21, 2, id, seq), Unit: "°C", Seq: seq})
		mid := s.nextID()
		p := &codec.Publish{Flags: codec.Flags{QoS: 1, TopicIDType: codec.TopicNormal}, TopicID: topicID, MsgID: mid, Data: data}
		if _, err := s.exchange(p, codec.TypePuback, mid); err != nil {
			return fmt.Errorf("%s: publish: %w", clientID, err)
		}
		select {
		case <-ctx.Done():
			_ = s.send(&codec.Disconnect{})
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *snSensor) nextID() uint16 {
	s.msgID++
	if s.msgID == 0 {
		s.msgID = 1
	}
	return s.msgID
}

func (s *snSensor) send(m codec.Message) error {
	raw, err := codec.Encode(m)
	if err != nil {
		return err
	}
	_, err = s.conn.Write(raw)
	return err
}

// exchange sends m and waits for a reply of type want (with message id
// mid, when not 0), retransmitting m with DUP set after each Tretry.
func (s *snSensor) exchange(m codec.Message, want codec.Type, mid uint16) (codec.Message, error) {
	buf := make([]byte, 1500)
	for try := 0; try <= snMaxRetries; try++ {
		if try > 0 {
			if p, ok := m.(*codec.Publish); ok {
				p.Flags.DUP = true
			}
		}
		if err := s.send(m); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(snRetry)
		for {
			_ = s.conn.SetReadDeadline(deadline)
			n, err := s.conn.Read(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // retransmit
			}
			if err != nil {
				return nil, err
			}
			r, err := codec.Decode(buf[:n])
			if err != nil || r.Type() != want {
				continue // not ours (a PINGRESP, a stray retransmission)
			}
			if err := replyError(r, mid); err != nil {
				return nil, err
			}
			if mid == 0 || replyID(r) == mid {
				return r, nil
			}
		}
	}
	return nil, fmt.Errorf("no %s after %d retransmissions", want, snMaxRetries)
}

func replyID(m codec.Message) uint16 {
	switch m := m.(type) {
	case *codec.Regack:
		return m.MsgID
	case *codec.Puback:
		return m.MsgID
	}
	return 0
}

func replyError(m codec.Message, mid uint16) error {
	var rc codec.ReturnCode
	switch m := m.(type) {
	case *codec.ReturnOnly:
		rc = m.Code
	case *codec.Regack:
		rc = m.Code
	case *codec.Puback:
		if m.MsgID != mid {
			return nil
		}
		rc = m.Code
	}
	if rc != codec.Accepted {
		return fmt.Errorf("refused: return code 0x%02X", byte(rc))
	}
	return nil
}

// runCoAPSensor POSTs a JSON reading (Content-Format 50) to /ps/{topic}
// as a CON request (QoS 1) with go-coap's client; the reading is retained,
// so a dashboard that starts later sees the last value at once.
func runCoAPSensor(ctx context.Context, addr string, id int, every time.Duration) error {
	cc, err := udp.Dial(addr, coapopts.WithErrors(func(error) {}))
	if err != nil {
		return err
	}
	defer cc.Close()
	name := fmt.Sprintf("coap-hygro-%d", id)
	path := fmt.Sprintf("/ps/fleet/coap/%d/humidity", id)
	retain := message.Option{ID: message.URIQuery, Value: []byte("retain=true")}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		data, _ := json.Marshal(reading{Sensor: name, Via: "CoAP", Kind: "humidity",
			Value: wave(45, 5, id, seq), Unit: "%", Seq: seq})
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := cc.Post(rctx, path, message.AppJSON, bytes.NewReader(data), retain)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		code := resp.Code()
		cc.ReleaseMessage(resp)
		if code != codes.Changed {
			return fmt.Errorf("%s: publish refused: %v", name, code)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
