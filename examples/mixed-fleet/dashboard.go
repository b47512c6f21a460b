package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// dashboard is an MQTT 5 client (Eclipse Paho) subscribed to fleet/#,
// printing one line per reading with the content type it arrived with.
type dashboard struct {
	c *paho.Client
}

func startDashboard(brokerURL string, out io.Writer) (*dashboard, error) {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	c := paho.NewClient(paho.ClientConfig{
		ClientID: "dashboard",
		Conn:     nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			printReading(out, pr.Packet)
			return true, nil
		}},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "dashboard", CleanStart: true, KeepAlive: 30}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fleet/#", QoS: 1}}}); err != nil {
		_ = c.Disconnect(&paho.Disconnect{})
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return &dashboard{c: c}, nil
}

func printReading(out io.Writer, p *paho.Publish) {
	ct := "no content type"
	if p.Properties != nil && p.Properties.ContentType != "" {
		ct = p.Properties.ContentType
	}
	var r reading
	if err := json.Unmarshal(p.Payload, &r); err != nil || r.Sensor == "" {
		fmt.Fprintf(out, "%s  %-32s %q (%s)\n", time.Now().Format("15:04:05"), p.Topic, p.Payload, ct)
		return
	}
	retained := ""
	if p.Retain {
		retained = " retained"
	}
	fmt.Fprintf(out, "%s  %-32s %-14s %-8s %6.1f %-2s  seq %-4d (%s%s)\n", time.Now().Format("15:04:05"),
		p.Topic, r.Sensor, r.Via, r.Value, r.Unit, r.Seq, ct, retained)
}

func (d *dashboard) stop() {
	_ = d.c.Disconnect(&paho.Disconnect{})
}
