package api

import (
	"net/http"
	"time"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/mgmt"
)

// Ban is one entry of the ban list.
type Ban struct {
	// Field is clientid, username or address (an address or CIDR prefix).
	Field   string     `json:"field"`
	Value   string     `json:"value"`
	Reason  string     `json:"reason,omitempty"`
	Created time.Time  `json:"created"`
	Until   *time.Time `json:"until,omitempty"`
}

// BanRequest adds a ban: until a time, for a duration (Go syntax,
// "10m"), or, with neither, for good.
type BanRequest struct {
	Field    string     `json:"field"`
	Value    string     `json:"value"`
	Reason   string     `json:"reason"`
	Until    *time.Time `json:"until"`
	Duration string     `json:"duration"`
}

func banOf(b *core.Ban) Ban {
	out := Ban{Field: b.Field, Value: b.Value, Reason: b.Reason, Created: b.Created.UTC()}
	if !b.Until.IsZero() {
		t := b.Until.UTC()
		out.Until = &t
	}
	return out
}

func (a *API) listBans(w http.ResponseWriter, r *http.Request) {
	list := a.b.Bans().List()
	out := Page[Ban]{Data: make([]Ban, len(list))}
	for i := range list {
		out.Data[i] = banOf(&list[i])
	}
	mgmt.WriteJSON(w, http.StatusOK, out)
}

// addBan is POST /api/v1/bans; the clients it matches are disconnected.
func (a *API) addBan(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if mgmt.DecodeJSON(w, r, &req) != nil {
		return
	}
	ban := core.Ban{Field: req.Field, Value: req.Value, Reason: req.Reason, Created: time.Now()}
	switch {
	case req.Until != nil && req.Duration != "":
		mgmt.WriteError(w, http.StatusBadRequest, "until or duration, not both")
		return
	case req.Until != nil:
		ban.Until = *req.Until
	case req.Duration != "":
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			mgmt.WriteError(w, http.StatusBadRequest, "duration: want a positive Go duration such as 10m")
			return
		}
		ban.Until = ban.Created.Add(d)
	}
	if ban.Reason == "" {
		ban.Reason = "manual (" + mgmt.IdentityFrom(r.Context()).Name + ")"
	}
	if err := a.b.Bans().Add(ban); err != nil {
		mgmt.WriteError(w, statusOf(err), err.Error())
		return
	}
	for _, b := range a.b.Bans().List() { // the stored form (a normalized prefix)
		if b.Field == ban.Field && b.Created.Equal(ban.Created) {
			mgmt.WriteJSON(w, http.StatusCreated, banOf(&b))
			return
		}
	}
	mgmt.WriteJSON(w, http.StatusCreated, banOf(&ban))
}

// removeBan is DELETE /api/v1/bans/{field}/{value...} (a CIDR prefix's
// "/" as is).
func (a *API) removeBan(w http.ResponseWriter, r *http.Request) {
	ok, err := a.b.Bans().Remove(r.PathValue("field"), r.PathValue("value"))
	switch {
	case err != nil:
		mgmt.WriteError(w, statusOf(err), err.Error())
	case !ok:
		mgmt.WriteError(w, http.StatusNotFound, "no such ban")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
