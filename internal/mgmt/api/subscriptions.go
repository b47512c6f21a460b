package api

import (
	"net/http"
	"strings"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/mgmt"
)

// Subscription is one subscription of a session.
type Subscription struct {
	ClientID          string `json:"client_id"`
	Filter            string `json:"filter"`
	Group             string `json:"share_group,omitempty"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local"`
	RetainAsPublished bool   `json:"retain_as_published"`
	RetainHandling    byte   `json:"retain_handling"`
}

func subscriptionOf(s *core.SubscriptionInfo) Subscription {
	return Subscription{ClientID: s.ClientID, Filter: s.Filter, Group: s.Group, QoS: s.Options.QoS,
		NoLocal: s.Options.NoLocal, RetainAsPublished: s.Options.RetainAsPublished, RetainHandling: s.Options.RetainHandling}
}

// subscriptionCursor joins a (client id, filter) cursor; NUL appears in
// neither.
func subscriptionCursor(s *core.SubscriptionInfo) string { return s.ClientID + "\x00" + s.Filter }

// listSubscriptions is GET /api/v1/subscriptions?client_id=&topic=&share_group=&cursor=&limit=.
func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a.writeSubscriptions(w, r, core.SubscriptionFilter{ClientID: q.Get("client_id"), Topic: q.Get("topic"), Group: q.Get("share_group")})
}

func (a *API) clientSubscriptions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := a.b.Session(id); !ok {
		mgmt.WriteError(w, http.StatusNotFound, "no session with this client id")
		return
	}
	a.writeSubscriptions(w, r, core.SubscriptionFilter{ClientID: id})
}

func (a *API) writeSubscriptions(w http.ResponseWriter, r *http.Request, f core.SubscriptionFilter) {
	limit, ok := limitOf(w, r)
	if !ok {
		return
	}
	afterID, afterFilter, _ := strings.Cut(r.URL.Query().Get("cursor"), "\x00")
	page, more := a.b.ListSubscriptions(f, afterID, afterFilter, limit)
	out := Page[Subscription]{Data: make([]Subscription, len(page))}
	for i := range page {
		out.Data[i] = subscriptionOf(&page[i])
	}
	if more {
		out.NextCursor = subscriptionCursor(&page[len(page)-1])
	}
	mgmt.WriteJSON(w, http.StatusOK, out)
}

// SubscribeRequest is the body of a subscribe on a client's behalf.
type SubscribeRequest struct {
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local"`
	RetainAsPublished bool   `json:"retain_as_published"`
	RetainHandling    byte   `json:"retain_handling"`
}

// subscribe is POST /api/v1/clients/{id}/subscriptions: the session gets
// the subscription (authorized as the client) and its retained messages.
func (a *API) subscribe(w http.ResponseWriter, r *http.Request) {
	var req SubscribeRequest
	if mgmt.DecodeJSON(w, r, &req) != nil {
		return
	}
	if req.Filter == "" || req.QoS > 2 || req.RetainHandling > 2 {
		mgmt.WriteError(w, http.StatusBadRequest, "want a filter, qos 0 to 2 and retain_handling 0 to 2")
		return
	}
	id := r.PathValue("id")
	err := a.b.SubscribeFor(id, req.Filter, core.SubOptions{QoS: req.QoS, NoLocal: req.NoLocal,
		RetainAsPublished: req.RetainAsPublished, RetainHandling: req.RetainHandling})
	if err != nil {
		mgmt.WriteError(w, statusOf(err), err.Error())
		return
	}
	mgmt.WriteJSON(w, http.StatusCreated, Subscription{ClientID: id, Filter: req.Filter, QoS: req.QoS, NoLocal: req.NoLocal,
		RetainAsPublished: req.RetainAsPublished, RetainHandling: req.RetainHandling})
}

// unsubscribe is DELETE /api/v1/clients/{id}/subscriptions?filter=.
func (a *API) unsubscribe(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		mgmt.WriteError(w, http.StatusBadRequest, "want ?filter=")
		return
	}
	if !a.b.UnsubscribeFor(r.PathValue("id"), filter) {
		mgmt.WriteError(w, http.StatusNotFound, "no such session or subscription")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
