// Package api is iotgw's REST management API, /api/v1, JSON: clients,
// subscriptions, publish, retained messages, bans, listeners, the running
// configuration and reload. It works over two small interfaces, Broker
// (what *core.Broker does) and Gateway (what the application adds), and
// registers its routes on a mgmt.Server; openapi.json documents them.
package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/mgmt"
)

// Broker is what the API needs of the core (*core.Broker implements it).
type Broker interface {
	ListSessions(f core.SessionFilter, after string, limit int) ([]core.SessionInfo, bool)
	Session(clientID string) (*core.Session, bool)
	Kick(clientID string) (found, connected bool)
	ListSubscriptions(f core.SubscriptionFilter, afterID, afterFilter string, limit int) ([]core.SubscriptionInfo, bool)
	SubscribeFor(clientID, filter string, opts core.SubOptions) error
	UnsubscribeFor(clientID, filter string) bool
	PublishMatched(msg *core.Message) (bool, error)
	ListRetained(filter, after string, limit int) ([]*core.Message, bool, error)
	Retained(topic string) (*core.Message, bool)
	DeleteRetained(topic string) (bool, error)
	Bans() *core.Bans
	Stats() *core.Stats
	SessionCount() int
	RetainedCount() int
	ConnectedBy() map[string]int
}

// Listener is one listener's state.
type Listener struct {
	// Name is the configuration key ("mqtt.tcp", "coap.dtls", "http").
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	// Addr is the bound address ("" when off).
	Addr    string `json:"addr"`
	Running bool   `json:"running"`
	TLS     bool   `json:"tls"`
	// Connections counts the clients connected through it now.
	Connections int `json:"connections"`
}

// ReloadReport is the outcome of a reload: what was reloaded, or why
// nothing was, and the changed keys that need a restart.
type ReloadReport struct {
	Applied       bool     `json:"applied"`
	Reloaded      []string `json:"reloaded"`
	RestartNeeded []string `json:"restart_needed,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// Gateway is what the API needs of the application.
type Gateway interface {
	Listeners() []Listener
	// RunningConfig returns every configuration key's value in use, with
	// secrets masked.
	RunningConfig() map[string]any
	// ReloadAll re-reads the configuration file and the files it names,
	// all or nothing.
	ReloadAll() ReloadReport
}

// API holds the handlers.
type API struct {
	b  Broker
	gw Gateway
}

// Register adds the API's routes to s.
func Register(s *mgmt.Server, b Broker, gw Gateway) *API {
	a := &API{b: b, gw: gw}
	v, p, adm := mgmt.RoleViewer, mgmt.RolePublisher, mgmt.RoleAdmin
	s.Handle("GET /api/v1/openapi.json", mgmt.RoleNone, serveOpenAPI)
	s.Handle("GET /api/v1/stats", v, a.stats)
	s.Handle("GET /api/v1/clients", v, a.listClients)
	s.Handle("GET /api/v1/clients/{id}", v, a.getClient)
	s.Handle("DELETE /api/v1/clients/{id}", adm, a.kickClient)
	s.Handle("POST /api/v1/clients/kick", adm, a.kickClients)
	s.Handle("GET /api/v1/clients/{id}/subscriptions", v, a.clientSubscriptions)
	s.Handle("POST /api/v1/clients/{id}/subscriptions", adm, a.subscribe)
	s.Handle("DELETE /api/v1/clients/{id}/subscriptions", adm, a.unsubscribe)
	s.Handle("GET /api/v1/subscriptions", v, a.listSubscriptions)
	s.Handle("POST /api/v1/publish", p, a.publish)
	s.Handle("POST /api/v1/publish/batch", p, a.publishBatch)
	s.Handle("GET /api/v1/retained", v, a.listRetained)
	s.Handle("GET /api/v1/retained/{topic...}", v, a.getRetained)
	s.Handle("DELETE /api/v1/retained/{topic...}", adm, a.deleteRetained)
	s.Handle("GET /api/v1/bans", v, a.listBans)
	s.Handle("POST /api/v1/bans", adm, a.addBan)
	s.Handle("DELETE /api/v1/bans/{field}/{value...}", adm, a.removeBan)
	s.Handle("GET /api/v1/listeners", v, a.listeners)
	s.Handle("GET /api/v1/config", adm, a.config)
	s.Handle("POST /api/v1/reload", adm, a.reload)
	return a
}

// Page limits of the list endpoints.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// limitOf reads ?limit= (default 100, at most 1000); false after writing
// a 400.
func limitOf(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return defaultLimit, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		mgmt.WriteError(w, http.StatusBadRequest, "limit: want a number from 1 to 1000")
		return 0, false
	}
	return n, true
}

// Page is the envelope of every list: the items and, when more follow,
// the cursor to pass as ?cursor= for the next page.
type Page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// statusOf maps a core error onto an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, core.ErrNotAuthorized):
		return http.StatusForbidden
	case errors.Is(err, core.ErrInvalidTopic), errors.Is(err, core.ErrTopicTooLong), errors.Is(err, core.ErrInvalidFilter),
		errors.Is(err, core.ErrSharedNotSupported), errors.Is(err, core.ErrWildcardUnsupported), errors.Is(err, core.ErrBadBan):
		return http.StatusBadRequest
	case errors.Is(err, core.ErrQuotaExceeded):
		return http.StatusBadRequest
	case errors.Is(err, core.ErrSessionClosed):
		return http.StatusNotFound
	}
	return http.StatusServiceUnavailable
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	st := a.b.Stats()
	mgmt.WriteJSON(w, http.StatusOK, map[string]any{
		"clients_connected":     st.ClientsConnected.Load(),
		"clients_maximum":       st.ClientsMaximum.Load(),
		"sessions":              a.b.SessionCount(),
		"retained":              a.b.RetainedCount(),
		"messages_received":     st.MessagesReceived.Load(),
		"messages_sent":         st.MessagesSent.Load(),
		"bytes_received":        st.BytesReceived.Load(),
		"bytes_sent":            st.BytesSent.Load(),
		"dropped_qos0":          st.DroppedQoS0.Load(),
		"dropped_queue_full":    st.DroppedQueueFull.Load(),
		"dropped_offline":       st.DroppedOffline.Load(),
		"dropped_expired":       st.DroppedExpired.Load(),
		"dropped_no_subscriber": st.DroppedNoSubscriber.Load(),
		"connected_by_listener": a.b.ConnectedBy(),
	})
}

func (a *API) listeners(w http.ResponseWriter, r *http.Request) {
	mgmt.WriteJSON(w, http.StatusOK, Page[Listener]{Data: a.gw.Listeners()})
}

func (a *API) config(w http.ResponseWriter, r *http.Request) {
	mgmt.WriteJSON(w, http.StatusOK, a.gw.RunningConfig())
}

func (a *API) reload(w http.ResponseWriter, r *http.Request) {
	rep := a.gw.ReloadAll()
	code := http.StatusOK
	if !rep.Applied {
		code = http.StatusUnprocessableEntity
	}
	mgmt.WriteJSON(w, code, rep)
}
