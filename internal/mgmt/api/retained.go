package api

import (
	"encoding/base64"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/mgmt"
)

// Retained is a retained message.
type Retained struct {
	Topic string `json:"topic"`
	// Payload is the payload as text when it is UTF-8, else base64
	// (PayloadEncoding says which).
	Payload         string     `json:"payload"`
	PayloadEncoding string     `json:"payload_encoding"`
	QoS             byte       `json:"qos"`
	ContentType     string     `json:"content_type,omitempty"`
	Created         time.Time  `json:"created"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	Publisher       string     `json:"publisher,omitempty"`
}

func retainedOf(m *core.Message) Retained {
	out := Retained{Topic: m.Topic, QoS: m.QoS, ContentType: m.ContentType, Created: m.Created.UTC(), Publisher: m.Origin.ClientID}
	if utf8.Valid(m.Payload) {
		out.Payload, out.PayloadEncoding = string(m.Payload), "plain"
	} else {
		out.Payload, out.PayloadEncoding = base64.StdEncoding.EncodeToString(m.Payload), "base64"
	}
	if !m.ExpiresAt.IsZero() {
		t := m.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out
}

// listRetained is GET /api/v1/retained?filter=&cursor=&limit=.
func (a *API) listRetained(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitOf(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	filter := q.Get("filter")
	if filter == "" {
		filter = "#"
	}
	page, more, err := a.b.ListRetained(filter, q.Get("cursor"), limit)
	if err != nil {
		mgmt.WriteError(w, http.StatusBadRequest, "filter: "+err.Error())
		return
	}
	out := Page[Retained]{Data: make([]Retained, len(page))}
	for i, m := range page {
		out.Data[i] = retainedOf(m)
	}
	if more {
		out.NextCursor = page[len(page)-1].Topic
	}
	mgmt.WriteJSON(w, http.StatusOK, out)
}

// getRetained is GET /api/v1/retained/{topic...} (a topic's "/" as is;
// a topic with an empty level, or starting with "/", needs %2F).
func (a *API) getRetained(w http.ResponseWriter, r *http.Request) {
	m, ok := a.b.Retained(r.PathValue("topic"))
	if !ok {
		mgmt.WriteError(w, http.StatusNotFound, "no retained message on this topic")
		return
	}
	mgmt.WriteJSON(w, http.StatusOK, retainedOf(m))
}

func (a *API) deleteRetained(w http.ResponseWriter, r *http.Request) {
	ok, err := a.b.DeleteRetained(r.PathValue("topic"))
	switch {
	case err != nil:
		mgmt.WriteError(w, http.StatusServiceUnavailable, err.Error())
	case !ok:
		mgmt.WriteError(w, http.StatusNotFound, "no retained message on this topic")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
