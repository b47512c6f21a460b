package core

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/internal/ratelimit"
)

// What a ban matches (Ban.Field).
const (
	BanClientID = "clientid"
	BanUsername = "username"
	// BanAddress matches a source address by prefix: "192.0.2.7" (one
	// address), "192.0.2.0/24", "2001:db8::/64".
	BanAddress = "address"
)

// Ban is one entry of the ban list, the store's record as it is: Field
// is BanClientID, BanUsername or BanAddress, and with Value names the ban
// (adding the same pair again replaces it); Until ends it (zero:
// permanent); Created is set by Add when zero; Reason is for the
// operator ("manual", "12 failed logins").
type Ban = store.Ban

// banExpired reports whether ban is over at now.
func banExpired(ban *Ban, now time.Time) bool { return !ban.Until.IsZero() && !now.Before(ban.Until) }

// maxTemporaryBans bounds the bans made by failed-login throttling, so
// that a flood of failed logins from spoofed datagram sources cannot grow
// the list without bound; bans added through Add are not counted.
const maxTemporaryBans = 10000

// Bans is the broker's ban list: every protocol's connections are checked
// against it at connect (and stream connections' addresses at accept),
// connected clients it matches are closed when a ban is added, and with
// a store it survives restarts. Expired bans are dropped as they are met
// and by every Add and List.
type Bans struct {
	b  *Broker
	mu sync.RWMutex
	n  atomic.Int32 // entries, for a lock-free "none" on the connect path
	// ids and users by value; addrs by masked prefix, with lens counting
	// the prefixes of each length so a lookup masks only those.
	ids, users map[string]Ban
	addrs      map[netip.Prefix]Ban
	lens       [129]int
	temporary  int
}

func newBans(b *Broker) *Bans {
	return &Bans{b: b, ids: make(map[string]Ban), users: make(map[string]Ban), addrs: make(map[netip.Prefix]Ban)}
}

// Bans returns the broker's ban list (for the management API).
func (b *Broker) Bans() *Bans { return b.bans }

// ErrBadBan refuses a ban with an unknown field or an unusable value.
var ErrBadBan = errors.New("bad ban")

// normalize checks a ban and brings an address to its masked prefix form.
func normalizeBan(ban *Ban) (netip.Prefix, error) {
	if ban.Value == "" {
		return netip.Prefix{}, fmt.Errorf("%w: empty %s", ErrBadBan, ban.Field)
	}
	switch ban.Field {
	case BanClientID, BanUsername:
		return netip.Prefix{}, nil
	case BanAddress:
		p, err := netip.ParsePrefix(ban.Value)
		if err != nil {
			a, err2 := netip.ParseAddr(ban.Value)
			if err2 != nil {
				return netip.Prefix{}, fmt.Errorf("%w: %q is neither an address nor a CIDR prefix", ErrBadBan, ban.Value)
			}
			a = a.Unmap().WithZone("")
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		p = p.Masked()
		ban.Value = p.String()
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("%w: field %q is not %s, %s or %s", ErrBadBan, ban.Field, BanClientID, BanUsername, BanAddress)
}

// Add adds or replaces a ban, makes it durable (with a store), and closes
// the connected clients it matches (ErrBanned: MQTT 5 sees DISCONNECT
// 0x87, since 0x8A is a CONNACK code only).
func (bs *Bans) Add(ban Ban) error {
	if _, err := normalizeBan(&ban); err != nil {
		return err
	}
	if ban.Created.IsZero() {
		ban.Created = time.Now()
	}
	if err := bs.persist(func(w *store.Batch) { w.PutBan(&ban) }); err != nil {
		return err
	}
	bs.mu.Lock()
	bs.putLocked(ban)
	bs.purgeLocked(time.Now())
	bs.mu.Unlock()
	bs.kick(&ban)
	bs.b.log.Info("ban added", zap.String(ban.Field, ban.Value), zap.Time("until", ban.Until), zap.String("reason", ban.Reason))
	return nil
}

// addTemporary is Add for the bans of failed-login throttling: within
// maxTemporaryBans, and never shortening or replacing an existing ban.
func (bs *Bans) addTemporary(ban Ban) error {
	if _, err := normalizeBan(&ban); err != nil {
		return err
	}
	bs.mu.Lock()
	if old, ok := bs.getLocked(ban.Field, ban.Value); ok && (old.Until.IsZero() || old.Until.After(ban.Until)) {
		bs.mu.Unlock()
		return nil
	}
	if bs.temporary >= maxTemporaryBans {
		bs.purgeLocked(time.Now())
		if bs.temporary >= maxTemporaryBans {
			bs.mu.Unlock()
			return fmt.Errorf("%d temporary bans in force", maxTemporaryBans)
		}
	}
	bs.mu.Unlock()
	return bs.Add(ban)
}

// Remove lifts the ban of field and value; false if there was none.
func (bs *Bans) Remove(field, value string) (bool, error) {
	ban := Ban{Field: field, Value: value}
	if _, err := normalizeBan(&ban); err != nil {
		return false, err
	}
	bs.mu.RLock()
	_, ok := bs.getLocked(ban.Field, ban.Value)
	bs.mu.RUnlock()
	if !ok {
		return false, nil
	}
	if err := bs.persist(func(w *store.Batch) { w.DeleteBan(ban.Field, ban.Value) }); err != nil {
		return false, err
	}
	bs.mu.Lock()
	bs.deleteLocked(ban.Field, ban.Value)
	bs.mu.Unlock()
	bs.b.log.Info("ban lifted", zap.String(ban.Field, ban.Value))
	return true, nil
}

// List returns the bans in force, by field then value.
func (bs *Bans) List() []Ban {
	bs.mu.Lock()
	bs.purgeLocked(time.Now())
	out := make([]Ban, 0, bs.n.Load())
	for _, m := range []map[string]Ban{bs.ids, bs.users} {
		for _, ban := range m {
			out = append(out, ban)
		}
	}
	for _, ban := range bs.addrs {
		out = append(out, ban)
	}
	bs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Field != out[j].Field {
			return out[i].Field < out[j].Field
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// persist commits one change of the list durably (nothing without a
// store).
func (bs *Bans) persist(f func(*store.Batch)) error {
	w := bs.b.newWrites()
	if w == nil {
		return nil
	}
	f(&w.b)
	if err := bs.b.commit(w, true); err != nil {
		return fmt.Errorf("ban list not stored: %w", err)
	}
	return nil
}

func (bs *Bans) getLocked(field, value string) (Ban, bool) {
	switch field {
	case BanClientID:
		b, ok := bs.ids[value]
		return b, ok
	case BanUsername:
		b, ok := bs.users[value]
		return b, ok
	}
	p, err := netip.ParsePrefix(value)
	if err != nil {
		return Ban{}, false
	}
	b, ok := bs.addrs[p]
	return b, ok
}

// putLocked adds a normalized ban.
func (bs *Bans) putLocked(ban Ban) {
	bs.deleteLocked(ban.Field, ban.Value)
	switch ban.Field {
	case BanClientID:
		bs.ids[ban.Value] = ban
	case BanUsername:
		bs.users[ban.Value] = ban
	default:
		p := netip.MustParsePrefix(ban.Value)
		bs.addrs[p] = ban
		bs.lens[p.Bits()]++
	}
	if !ban.Until.IsZero() {
		bs.temporary++
	}
	bs.n.Add(1)
}

func (bs *Bans) deleteLocked(field, value string) {
	old, ok := bs.getLocked(field, value)
	if !ok {
		return
	}
	switch field {
	case BanClientID:
		delete(bs.ids, value)
	case BanUsername:
		delete(bs.users, value)
	default:
		p := netip.MustParsePrefix(value)
		delete(bs.addrs, p)
		bs.lens[p.Bits()]--
	}
	if !old.Until.IsZero() {
		bs.temporary--
	}
	bs.n.Add(-1)
}

// purgeLocked drops expired bans, from the store too (not waiting: an
// expired record that survives a crash is dropped at recovery).
func (bs *Bans) purgeLocked(now time.Time) {
	if bs.temporary == 0 {
		return
	}
	var gone []Ban
	for _, m := range []map[string]Ban{bs.ids, bs.users} {
		for _, ban := range m {
			if banExpired(&ban, now) {
				gone = append(gone, ban)
			}
		}
	}
	for _, ban := range bs.addrs {
		if banExpired(&ban, now) {
			gone = append(gone, ban)
		}
	}
	if len(gone) == 0 {
		return
	}
	w := bs.b.newWrites()
	for _, ban := range gone {
		bs.deleteLocked(ban.Field, ban.Value)
		if w != nil {
			w.b.DeleteBan(ban.Field, ban.Value)
		}
	}
	if w != nil {
		_ = bs.b.commit(w, false)
	}
}

// match returns the ban in force that info matches, nil if none; an
// expired one met on the way is purged.
func (bs *Bans) match(info *ClientInfo) *Ban {
	addr, hasAddr := ratelimit.ParseAddr(info.Remote)
	now := time.Now()
	bs.mu.RLock()
	ban := bs.matchLocked(info.ClientID, info.Username, addr, hasAddr)
	bs.mu.RUnlock()
	return bs.checkExpired(ban, now)
}

// matchAddr is match for an address alone (at accept).
func (bs *Bans) matchAddr(addr netip.Addr) *Ban {
	bs.mu.RLock()
	ban := bs.matchLocked("", "", addr, true)
	bs.mu.RUnlock()
	return bs.checkExpired(ban, time.Now())
}

func (bs *Bans) checkExpired(ban *Ban, now time.Time) *Ban {
	if ban == nil || !banExpired(ban, now) {
		return ban
	}
	bs.mu.Lock()
	bs.purgeLocked(now)
	bs.mu.Unlock()
	return nil
}

func (bs *Bans) matchLocked(clientID, username string, addr netip.Addr, hasAddr bool) *Ban {
	if clientID != "" {
		if b, ok := bs.ids[clientID]; ok {
			return &b
		}
	}
	if username != "" {
		if b, ok := bs.users[username]; ok {
			return &b
		}
	}
	if hasAddr && len(bs.addrs) > 0 {
		addr = addr.Unmap().WithZone("")
		for bits := addr.BitLen(); bits >= 0; bits-- {
			if bs.lens[bits] == 0 {
				continue
			}
			p, _ := addr.Prefix(bits)
			if b, ok := bs.addrs[p]; ok {
				return &b
			}
		}
	}
	return nil
}

// kick closes the connected clients ban matches.
func (bs *Bans) kick(ban *Ban) {
	var prefix netip.Prefix
	if ban.Field == BanAddress {
		prefix = netip.MustParsePrefix(ban.Value)
	}
	var sinks []Sink
	for i := range bs.b.shards {
		sh := &bs.b.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			s.mu.Lock()
			sink := s.sink
			s.mu.Unlock()
			if sink == nil {
				continue
			}
			info := s.info.Load()
			var hit bool
			switch ban.Field {
			case BanClientID:
				hit = info.ClientID == ban.Value
			case BanUsername:
				hit = info.Username == ban.Value
			default:
				addr, ok := ratelimit.ParseAddr(info.Remote)
				hit = ok && prefix.Contains(addr)
			}
			if hit {
				sinks = append(sinks, sink)
			}
		}
		sh.mu.Unlock()
	}
	for _, sink := range sinks {
		sink.Close(ErrBanned)
	}
	if len(sinks) > 0 {
		bs.b.log.Info("banned clients disconnected", zap.String(ban.Field, ban.Value), zap.Int("clients", len(sinks)))
	}
}

// recover adds a stored ban at start-up; an expired one is removed from
// the store (cleanup).
func (bs *Bans) recover(rec *store.Ban, now time.Time, cleanup *store.Batch) {
	ban := *rec
	if _, err := normalizeBan(&ban); err != nil || banExpired(&ban, now) || ban.Value != rec.Value {
		cleanup.DeleteBan(rec.Field, rec.Value)
		if err != nil || banExpired(&ban, now) {
			return
		}
		cleanup.PutBan(&ban)
	}
	bs.mu.Lock()
	bs.putLocked(ban)
	bs.mu.Unlock()
}
