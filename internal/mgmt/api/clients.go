package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/mgmt"
)

// Client is a session as the API shows it.
type Client struct {
	ClientID  string `json:"client_id"`
	Protocol  string `json:"protocol"`
	Username  string `json:"username"`
	Listener  string `json:"listener"`
	Address   string `json:"address,omitempty"`
	Connected bool   `json:"connected"`
	// ConnectedAt is when it connected (connected), DisconnectedAt when
	// it went offline (not).
	ConnectedAt    *time.Time `json:"connected_at,omitempty"`
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
	KeepAlive      int64      `json:"keep_alive"`              // seconds
	ExpiryInterval int64      `json:"session_expiry_interval"` // seconds; -1: never
	Subscriptions  int        `json:"subscriptions"`
	Inflight       int        `json:"inflight"`
	Queued         int        `json:"queued"`
	Dropped        uint64     `json:"dropped"`
	MessagesIn     uint64     `json:"messages_in"`
	MessagesOut    uint64     `json:"messages_out"`
	// SubscriptionList is only in the answer for one client.
	SubscriptionList []Subscription `json:"subscription_list,omitempty"`
}

func clientOf(si *core.SessionInfo) Client {
	c := Client{ClientID: si.ClientID, Protocol: si.Protocol, Username: si.Username, Listener: si.Listener,
		Address: si.Remote, Connected: si.Connected, KeepAlive: int64(si.KeepAlive / time.Second),
		Subscriptions: si.SubscriptionCount, Inflight: si.Inflight, Queued: si.Queued, Dropped: si.Dropped,
		MessagesIn: si.MessagesIn, MessagesOut: si.MessagesOut, ExpiryInterval: int64(si.Expiry / time.Second)}
	if si.Expiry == core.NeverExpire {
		c.ExpiryInterval = -1
	}
	since := si.Since.UTC()
	if si.Connected {
		c.ConnectedAt = &since
	} else {
		c.DisconnectedAt = &since
	}
	for _, s := range si.Subscriptions {
		c.SubscriptionList = append(c.SubscriptionList, subscriptionOf(&s))
	}
	return c
}

// listClients is GET /api/v1/clients?protocol=&username=&prefix=&connected=&cursor=&limit=.
func (a *API) listClients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := limitOf(w, r)
	if !ok {
		return
	}
	f := core.SessionFilter{Protocol: q.Get("protocol"), Username: q.Get("username"), Prefix: q.Get("prefix")}
	if c := q.Get("connected"); c != "" {
		b, err := strconv.ParseBool(c)
		if err != nil {
			mgmt.WriteError(w, http.StatusBadRequest, "connected: want true or false")
			return
		}
		f.Connected = &b
	}
	page, more := a.b.ListSessions(f, q.Get("cursor"), limit)
	out := Page[Client]{Data: make([]Client, len(page))}
	for i := range page {
		out.Data[i] = clientOf(&page[i])
	}
	if more {
		out.NextCursor = page[len(page)-1].ClientID
	}
	mgmt.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getClient(w http.ResponseWriter, r *http.Request) {
	s, ok := a.b.Session(r.PathValue("id"))
	if !ok {
		mgmt.WriteError(w, http.StatusNotFound, "no session with this client id")
		return
	}
	si := s.Snapshot(true)
	mgmt.WriteJSON(w, http.StatusOK, clientOf(&si))
}

// kickClient is DELETE /api/v1/clients/{id}: 204 when a connection was
// closed, 404 with no such session, 409 for a session with no connection.
func (a *API) kickClient(w http.ResponseWriter, r *http.Request) {
	found, connected := a.b.Kick(r.PathValue("id"))
	switch {
	case !found:
		mgmt.WriteError(w, http.StatusNotFound, "no session with this client id")
	case !connected:
		mgmt.WriteError(w, http.StatusConflict, "the session is not connected")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// KickResult is one client of a bulk kick.
type KickResult struct {
	ClientID string `json:"client_id"`
	Kicked   bool   `json:"kicked"`
	Reason   string `json:"reason,omitempty"`
}

// maxBatch bounds the items of a bulk call.
const maxBatch = 1000

// kickClients is POST /api/v1/clients/kick with ["id", ...].
func (a *API) kickClients(w http.ResponseWriter, r *http.Request) {
	var ids []string
	if mgmt.DecodeJSON(w, r, &ids) != nil {
		return
	}
	if len(ids) > maxBatch {
		mgmt.WriteError(w, http.StatusBadRequest, "at most 1000 client ids a call")
		return
	}
	out := make([]KickResult, len(ids))
	for i, id := range ids {
		found, connected := a.b.Kick(id)
		out[i] = KickResult{ClientID: id, Kicked: connected}
		switch {
		case !found:
			out[i].Reason = "no session"
		case !connected:
			out[i].Reason = "not connected"
		}
	}
	mgmt.WriteJSON(w, http.StatusOK, Page[KickResult]{Data: out})
}
