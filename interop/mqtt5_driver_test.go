package interop

// MQTT 5.0 over TCP (and over TLS), driven by Eclipse Paho's paho.golang.

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func protoMQTT5() *proto {
	return &proto{name: "mqtt5", caps: mqtt5Caps(), dial: func(t testing.TB, e *env, id string, w *will) client {
		return dialPaho5(t, e.gw.MQTTAddr(), id, w)
	}}
}

func mqtt5Caps() caps {
	return caps{
		pubQoS:      []int{0, 1, 2},
		seesQoS:     true,
		seesRetain:  true,
		contentType: true,
		props:       true,
		will:        true,
		maxIn: func(topic, ct string) int {
			props := 0
			if ct != "" {
				props = 1 + 2 + len(ct) // Content Type: identifier, length, string
			}
			return mqttMaxPayload(mqttMaxPacket, topic, true, props)
		},
		maxOut: func(string) int { return unlimited },
	}
}

type paho5Client struct {
	c  *paho.Client
	nc net.Conn
	in chan delivery
}

func dialPaho5(t testing.TB, addr, id string, w *will) *paho5Client {
	t.Helper()
	return dialPaho5TLS(t, addr, id, w, nil)
}

// dialPaho5TLS is dialPaho5 over TLS when tlsc is not nil.
func dialPaho5TLS(t testing.TB, addr, id string, w *will, tlsc *tls.Config) *paho5Client {
	t.Helper()
	var nc net.Conn
	var err error
	if tlsc != nil {
		nc, err = tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, tlsc)
	} else {
		nc, err = net.DialTimeout("tcp", addr, waitTimeout)
	}
	if err != nil {
		t.Fatal(err)
	}
	pc := &paho5Client{nc: nc, in: make(chan delivery, 4096)}
	pc.c = paho.NewClient(paho.ClientConfig{
		ClientID:      id,
		Conn:          nc,
		PacketTimeout: waitTimeout,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			pc.in <- fromPaho5(pr.Packet)
			return true, nil
		}},
		OnClientError: func(error) {},
	})
	cp := &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60}
	if w != nil {
		cp.WillMessage = &paho.WillMessage{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
		cp.WillProperties = &paho.WillProperties{ContentType: w.ContentType}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ca, err := pc.c.Connect(ctx, cp)
	if err != nil {
		t.Fatalf("paho5 %s connect: %v", id, err)
	}
	if ca.ReasonCode != 0 {
		t.Fatalf("paho5 %s connect: reason 0x%02X", id, ca.ReasonCode)
	}
	t.Cleanup(pc.Close)
	return pc
}

func fromPaho5(p *paho.Publish) delivery {
	d := delivery{Topic: p.Topic, Payload: p.Payload, QoS: int(p.QoS), PayloadFormat: -1}
	if p.Retain {
		d.Retain = 1
	}
	if pr := p.Properties; pr != nil {
		d.ContentType = pr.ContentType
		d.ResponseTopic = pr.ResponseTopic
		d.Correlation = pr.CorrelationData
		for _, u := range pr.User {
			d.UserProps = append(d.UserProps, [2]string{u.Key, u.Value})
		}
		if pr.PayloadFormat != nil {
			d.PayloadFormat = int(*pr.PayloadFormat)
		}
		if pr.MessageExpiry != nil {
			d.HasExpiry, d.ExpiryRaw = true, int64(*pr.MessageExpiry)
		}
	}
	return d
}

func (pc *paho5Client) Subscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := pc.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil {
		t.Fatalf("paho5 subscribe %s: %v", filter, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] != qos {
		t.Fatalf("paho5 subscribe %s: reasons %v, want granted QoS %d", filter, sa.Reasons, qos)
	}
}

func (pc *paho5Client) Publish(t testing.TB, m msg) {
	t.Helper()
	p := &paho.Publish{Topic: m.Topic, Payload: m.Payload, QoS: byte(m.QoS), Retain: m.Retain}
	if m.ContentType != "" || len(m.UserProps) > 0 || m.ResponseTopic != "" || m.Correlation != nil || m.ExpirySeconds > 0 {
		p.Properties = &paho.PublishProperties{ContentType: m.ContentType, ResponseTopic: m.ResponseTopic,
			CorrelationData: m.Correlation}
		for _, u := range m.UserProps {
			p.Properties.User = append(p.Properties.User, paho.UserProperty{Key: u[0], Value: u[1]})
		}
		if m.ExpirySeconds > 0 {
			e := m.ExpirySeconds
			p.Properties.MessageExpiry = &e
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := pc.c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("paho5 publish %s: %v", m.Topic, err)
	}
	if r != nil && r.ReasonCode >= 0x80 {
		t.Fatalf("paho5 publish %s: reason 0x%02X", m.Topic, r.ReasonCode)
	}
}

func (pc *paho5Client) Next(t testing.TB) delivery {
	t.Helper()
	select {
	case d := <-pc.in:
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("paho5: no message within %v", waitTimeout)
		return delivery{}
	}
}

func (pc *paho5Client) Close() {
	_ = pc.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-pc.c.Done():
	case <-time.After(waitTimeout):
	}
}

// Kill closes the TCP connection under the client.
func (pc *paho5Client) Kill(testing.TB) { pc.nc.Close() }
