package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/mgmt"
)

// PublishRequest is one message to publish (EMQX's shape).
type PublishRequest struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	// PayloadEncoding is "plain" (default: the payload's UTF-8 bytes) or
	// "base64".
	PayloadEncoding string             `json:"payload_encoding"`
	QoS             byte               `json:"qos"`
	Retain          bool               `json:"retain"`
	Properties      *PublishProperties `json:"properties"`
}

// PublishProperties are MQTT 5's publication properties.
type PublishProperties struct {
	PayloadFormatIndicator *byte  `json:"payload_format_indicator"`
	MessageExpiryInterval  uint32 `json:"message_expiry_interval"` // seconds, 0: none
	ContentType            string `json:"content_type"`
	ResponseTopic          string `json:"response_topic"`
	// CorrelationData is base64.
	CorrelationData string            `json:"correlation_data"`
	UserProperties  map[string]string `json:"user_properties"`
}

// PublishResult is the answer to one publish.
type PublishResult struct {
	Topic string `json:"topic"`
	// Status is the HTTP status of this message: 200 routed to at least
	// one subscriber, 202 nobody subscribed, 400 refused, 503 not
	// published.
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

// message checks a request and builds its message.
func (p *PublishRequest) message(by string) (*core.Message, error) {
	if p.Topic == "" {
		return nil, errors.New("topic missing")
	}
	if p.QoS > 2 {
		return nil, fmt.Errorf("qos %d: want 0, 1 or 2", p.QoS)
	}
	msg := &core.Message{Topic: p.Topic, QoS: p.QoS, Retain: p.Retain, Created: time.Now(),
		Origin: core.Origin{Protocol: "http", Username: by}}
	switch p.PayloadEncoding {
	case "", "plain":
		msg.Payload = []byte(p.Payload)
	case "base64":
		b, err := base64.StdEncoding.DecodeString(p.Payload)
		if err != nil {
			return nil, fmt.Errorf("payload: not base64: %v", err)
		}
		msg.Payload = b
	default:
		return nil, fmt.Errorf("payload_encoding %q: want plain or base64", p.PayloadEncoding)
	}
	if pp := p.Properties; pp != nil {
		if pp.PayloadFormatIndicator != nil {
			if *pp.PayloadFormatIndicator > 1 {
				return nil, errors.New("payload_format_indicator: want 0 or 1")
			}
			if *pp.PayloadFormatIndicator == 1 && !utf8.Valid(msg.Payload) {
				return nil, errors.New("payload_format_indicator 1 but the payload is not UTF-8")
			}
			msg.PayloadFormat = *pp.PayloadFormatIndicator
		}
		if pp.MessageExpiryInterval > 0 {
			msg.ExpiresAt = msg.Created.Add(time.Duration(pp.MessageExpiryInterval) * time.Second)
		}
		msg.ContentType = pp.ContentType
		msg.ResponseTopic = pp.ResponseTopic
		if pp.CorrelationData != "" {
			b, err := base64.StdEncoding.DecodeString(pp.CorrelationData)
			if err != nil {
				return nil, fmt.Errorf("correlation_data: not base64: %v", err)
			}
			msg.CorrelationData = b
		}
		for k, v := range pp.UserProperties {
			msg.UserProps = append(msg.UserProps, core.UserProperty{Key: k, Value: v})
		}
	}
	return msg, nil
}

// publishOne publishes one request and returns its result.
func (a *API) publishOne(p *PublishRequest, by string) PublishResult {
	res := PublishResult{Topic: p.Topic}
	msg, err := p.message(by)
	if err != nil {
		res.Status, res.Error = http.StatusBadRequest, err.Error()
		return res
	}
	matched, err := a.b.PublishMatched(msg)
	switch {
	case err != nil:
		res.Status, res.Error = statusOf(err), err.Error()
		if res.Status == http.StatusForbidden || res.Status == http.StatusNotFound {
			res.Status = http.StatusBadRequest
		}
	case matched:
		res.Status = http.StatusOK
	default:
		res.Status = http.StatusAccepted
		res.Error = "no subscriber matched"
	}
	return res
}

// publish is POST /api/v1/publish: 200 routed, 202 nobody subscribed
// (retained, if asked, all the same), 400 refused (bad topic, QoS,
// payload, the retained store full), 503 not published (the store
// failed, shutting down).
func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if mgmt.DecodeJSON(w, r, &req) != nil {
		return
	}
	res := a.publishOne(&req, mgmt.IdentityFrom(r.Context()).Name)
	mgmt.WriteJSON(w, res.Status, res)
}

// publishBatch is POST /api/v1/publish/batch with a list of publish
// requests: each is checked first, and if any is malformed nothing is
// published (400); otherwise every one is published in order and the
// answer lists each result (200, even when some were refused by the
// broker: their own status says so).
func (a *API) publishBatch(w http.ResponseWriter, r *http.Request) {
	var reqs []PublishRequest
	if mgmt.DecodeJSON(w, r, &reqs) != nil {
		return
	}
	if len(reqs) == 0 || len(reqs) > maxBatch {
		mgmt.WriteError(w, http.StatusBadRequest, "want 1 to 1000 messages")
		return
	}
	by := mgmt.IdentityFrom(r.Context()).Name
	for i := range reqs {
		if _, err := reqs[i].message(by); err != nil {
			mgmt.WriteError(w, http.StatusBadRequest, fmt.Sprintf("[%d]: %v", i, err))
			return
		}
	}
	out := make([]PublishResult, len(reqs))
	for i := range reqs {
		out[i] = a.publishOne(&reqs[i], by)
	}
	mgmt.WriteJSON(w, http.StatusOK, Page[PublishResult]{Data: out})
}
