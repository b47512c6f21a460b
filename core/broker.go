package core

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core/retain"
	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/core/topic"
)

// NeverExpire is a session expiry that never ends the session.
const NeverExpire = time.Duration(math.MaxInt64)

const sessionShards = 64

// Broker is the one topic space every adapter publishes into and
// subscribes from. It is safe for concurrent use; the publish path takes no
// broker-wide lock (the trie's match cache is lock-free on a hit, sessions
// lock individually).
type Broker struct {
	cfg   Config
	log   *zap.Logger
	authn Authenticator
	authz Authorizer
	// methods are the challenge/response authentication methods by name.
	methods map[string]AuthMethod
	// sysSources add values from outside the core to $SYS (AddSysSource).
	sysSources atomic.Pointer[[]SysSource]
	// endHooks are told of every session that ends (OnSessionEnd);
	// hookMu serialises registrations.
	endHooks atomic.Pointer[[]SessionEndHook]
	hookMu   sync.Mutex
	// guard enforces the limits per client and per source (limits.go),
	// bans the ban list (bans.go).
	guard *guard
	bans  *Bans

	subs     *topic.Trie[*subscriber]
	retained *retain.Store[*Message]
	shards   [sessionShards]sessionShard
	seed     maphash.Seed
	keySeq   atomic.Uint64
	// sharedMu serialises creation and removal of shared-subscription
	// groups (subscribe/unsubscribe only, never the publish path).
	sharedMu sync.Mutex

	// store, when set, receives every change that must survive a restart
	// (persist.go); nil keeps everything in memory only.
	store store.Store
	// storeFailed is told, once, of the first failed store write.
	storeFailed     func(error)
	storeFailedOnce sync.Once
	// delayedSeq numbers $delayed messages in the store.
	delayedSeq atomic.Uint64
	// order is the log of recent publications (order.go); nil when
	// session.order_window is 0.
	order *orderLog

	stats Stats
	// slots counts the connections that hold one of
	// limits.max_connections' places: those attached to a session and
	// those between admitConnection and attaching (Connect).
	slots   atomic.Int64
	started time.Time
	closing atomic.Bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

type sessionShard struct {
	mu sync.Mutex
	m  map[string]*Session
}

// Option customises a Broker.
type Option func(*Broker)

// WithAuthenticator sets the Authenticator (default AllowAll).
func WithAuthenticator(a Authenticator) Option { return func(b *Broker) { b.authn = a } }

// WithAuthorizer sets the Authorizer (default AllowAll).
func WithAuthorizer(a Authorizer) Option { return func(b *Broker) { b.authz = a } }

// WithAuthMethods adds challenge/response authentication methods (MQTT 5
// enhanced authentication).
func WithAuthMethods(ms ...AuthMethod) Option {
	return func(b *Broker) {
		for _, m := range ms {
			b.methods[m.Name()] = m
		}
	}
}

// AuthMethod returns the named challenge/response method, if configured.
func (b *Broker) AuthMethod(name string) (AuthMethod, bool) {
	m, ok := b.methods[name]
	return m, ok
}

// New returns a broker; call Start to begin $SYS publication and Close to
// shut it down.
func New(cfg Config, log *zap.Logger, opts ...Option) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	b := &Broker{
		cfg:      cfg,
		log:      log,
		authn:    AllowAll{},
		authz:    AllowAll{},
		methods:  make(map[string]AuthMethod),
		subs:     topic.NewTrie[*subscriber](),
		retained: retain.New[*Message](),
		seed:     maphash.MakeSeed(),
		started:  time.Now(),
		stop:     make(chan struct{}),
		order:    newOrderLog(cfg.OrderWindow),
	}
	for i := range b.shards {
		b.shards[i].m = make(map[string]*Session)
	}
	b.guard = newGuard(b, cfg.Limits)
	b.bans = newBans(b)
	b.AddSysSource(b.sysLimits)
	for _, o := range opts {
		o(b)
	}
	// A client's own grant (superuser, rules from its token or hook) comes
	// before the configured rules.
	b.authz = grantAuthorizer{next: b.authz}
	return b, nil
}

// Config returns the broker's configuration.
func (b *Broker) Config() Config { return b.cfg }

// Stats returns the broker's live counters.
func (b *Broker) Stats() *Stats { return &b.stats }

// Logger returns the broker's logger, for adapters to derive theirs from.
func (b *Broker) Logger() *zap.Logger { return b.log }

// Start begins periodic $SYS publication.
func (b *Broker) Start() {
	if b.cfg.SysInterval > 0 {
		b.wg.Add(1)
		go b.sysLoop()
	}
}

// Close stops $SYS publication and closes every connected session's sink
// with ErrServerShuttingDown. Adapters stop their listeners themselves.
func (b *Broker) Close() {
	if !b.closing.CompareAndSwap(false, true) {
		return
	}
	close(b.stop)
	b.wg.Wait()
	b.order.stop()
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			s.mu.Lock()
			if s.sink != nil {
				s.sink.Close(ErrServerShuttingDown)
			}
			s.mu.Unlock()
		}
		sh.mu.Unlock()
	}
}

func (b *Broker) shard(clientID string) *sessionShard {
	return &b.shards[maphash.String(b.seed, clientID)%sessionShards]
}

// Will is a message published when a connection ends without a clean
// disconnect, after Delay (MQTT 5 Will Delay Interval) unless the client
// reconnects first.
type Will struct {
	Msg   *Message
	Delay time.Duration
	// Expiry is the will message's expiry interval, which starts when the
	// will is published, not when the client connected (0: none).
	Expiry time.Duration
	// stored: the will has a PendingWill record to remove once it is
	// published or cancelled.
	stored bool
}

// ConnectRequest is what an adapter knows about a connecting client.
type ConnectRequest struct {
	ClientID string
	Username string
	Password []byte
	Protocol string
	Listener string
	Remote   string
	// Identity is a name the transport has verified: a TLS client
	// certificate's (the tls.identity key), a DTLS pre-shared key's. It
	// becomes the user name, and the Authenticator is not consulted: the
	// certificate or key is the credential, as with Mosquitto's
	// use_identity_as_username. Authorization sees it as the user name.
	Identity string
	// CertCN is the common name of the client's verified TLS certificate,
	// if any (for ${cert_cn} in access rules).
	CertCN string
	// KeepAlive is the connection's keep alive (MQTT, MQTT-SN) or
	// heart-beat (STOMP, CoAP) interval, for the management API; 0: none.
	KeepAlive time.Duration
	// CleanStart discards any existing session for ClientID.
	CleanStart bool
	// Expiry is how long the session outlives its connection: 0 ends it at
	// disconnect, NeverExpire keeps it forever. When UseDefaultExpiry is
	// set, the broker's DefaultExpiry applies instead.
	Expiry           time.Duration
	UseDefaultExpiry bool
	Will             *Will
	// ReceiveMax is the client's receive window for QoS 1/2 (0: no limit
	// beyond the broker's MaxInflight).
	ReceiveMax int
	// AuthMethod names the challenge/response method (see AuthMethod)
	// through which the adapter has already authenticated the client;
	// the Authenticator is then not consulted again, unless the method
	// is a PasswordMethod: Password then holds its data, for the chain.
	AuthMethod string
	Sink       Sink
}

// Authenticate runs the configured Authenticator for a client that is not
// connecting a session (e.g. a connectionless CoAP request), after the
// ban list and failed-login throttling (a caller serving many clients on
// one goroutine passes a NoWait context).
func (b *Broker) Authenticate(ctx context.Context, c *ClientInfo) error {
	return b.authenticate(ctx, c)
}

// Authorize runs the configured Authorizer.
func (b *Broker) Authorize(c *ClientInfo, a Access) bool {
	return b.authz.Authorize(c, a)
}

// checkCredentials decides whether a connecting client may in: a
// verified transport identity is its user name and only the ban list is
// asked; no method, or a method whose data is the password (a token),
// goes to the chain; any other method (a SASL exchange) was checked by
// the adapter's AUTH flow, so only bans and the method's existence are.
func (b *Broker) checkCredentials(ctx context.Context, info *ClientInfo, req ConnectRequest) error {
	if req.Identity != "" {
		info.Username = req.Identity
		return b.checkBans(info)
	}
	m, ok := b.methods[req.AuthMethod]
	if req.AuthMethod == "" || (ok && IsPasswordMethod(m)) {
		return b.authenticate(ctx, info)
	}
	if err := b.checkBans(info); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: unknown authentication method %q", ErrBadCredentials, req.AuthMethod)
	}
	return nil
}

// Connect authenticates a client and binds its connection (req.Sink) to a
// new or resumed session, taking it over from any connection that holds
// it. The session starts paused: deliveries are queued until the adapter,
// having sent its connection acknowledgement, calls Session.Start.
// present reports whether an existing session was resumed.
func (b *Broker) Connect(ctx context.Context, req ConnectRequest) (s *Session, present bool, err error) {
	if req.ClientID == "" {
		return nil, false, ErrClientIDInvalid
	}
	if req.Sink == nil {
		return nil, false, fmt.Errorf("core: connect %q without a sink", req.ClientID)
	}
	if b.closing.Load() {
		return nil, false, ErrServerShuttingDown
	}
	if !b.admitConnection() {
		return nil, false, ErrServerBusy
	}
	info := &ClientInfo{Protocol: req.Protocol, ClientID: req.ClientID, Username: req.Username,
		Password: req.Password, Listener: req.Listener, Remote: req.Remote, CertCN: req.CertCN, KeepAlive: req.KeepAlive}
	if err := b.checkCredentials(ctx, info, req); err != nil {
		b.slots.Add(-1)
		return nil, false, err
	}
	info.Password = nil // not kept beyond authentication
	expiry := b.effectiveExpiry(req)
	window := b.cfg.MaxInflight
	if req.ReceiveMax > 0 && req.ReceiveMax < window {
		window = req.ReceiveMax
	}

	var wills []*Will
	var discarded *Session
	sh := b.shard(req.ClientID)
	sh.mu.Lock()
	old := sh.m[req.ClientID]
	if old != nil {
		old.mu.Lock()
		if w := old.detachForTakeover(req.CleanStart); w != nil {
			wills = append(wills, w)
		}
		if req.CleanStart || old.ended {
			old.ended = true
			old.stopTimersLocked()
			old.dropStoredLocked()
			discarded = old
		} else {
			s = old
			present = true
			s.resumeLocked(info, req, expiry, window)
		}
		old.mu.Unlock()
		if discarded != nil {
			// Submitted under the shard lock, so that it precedes the
			// records of the session that replaces it.
			discarded.flushWrites(true)
		}
	}
	if s == nil {
		s = b.newSession(info, req, expiry, window)
	}
	if b.store != nil {
		s.mu.Lock()
		if expiry > 0 {
			s.persisted = true
			s.pwLocked(nil).PutSession(s.sessionRecordLocked(time.Time{}))
		} else {
			s.dropStoredLocked() // a resumed session that no longer outlives its connection
		}
		s.mu.Unlock()
	}
	sh.m[req.ClientID] = s
	sh.mu.Unlock()

	b.stats.connected()
	if discarded != nil {
		b.dropSubscriptions(discarded)
		b.sessionEnded(discarded)
	}
	for _, w := range wills {
		b.publishWill(w, req.ClientID)
	}
	// The session is durable before the connection is acknowledged
	// (CONNACK session present).
	if err := s.flushWrites(true); err != nil {
		b.log.Error("session not stored", zap.String("client_id", req.ClientID), zap.Error(err))
	}
	s.armAuthExpiry(req.Sink, b.connectionEnd(info.Grant, time.Now()))
	return s, present, nil
}

// Reauthenticate checks new credentials of a connected client (MQTT 5
// AUTH with reason 0x19, a fresh token) through the chain. On success the
// session takes the new grant: its rules, and its expiry, which moves the
// end of the connection. On failure nothing changes and the adapter ends
// the connection as its protocol says.
func (b *Broker) Reauthenticate(ctx context.Context, s *Session, password []byte) error {
	old := s.info.Load()
	info := *old
	info.Password, info.Grant = password, nil
	if err := b.authenticate(ctx, &info); err != nil {
		return err
	}
	info.Password = nil
	s.info.Store(&info)
	s.mu.Lock()
	sink := s.sink
	s.mu.Unlock()
	if sink != nil {
		// limits.max_connection_lifetime counts from this
		// authentication: re-authenticating is what it asks for.
		s.armAuthExpiry(sink, b.connectionEnd(info.Grant, time.Now()))
	}
	return nil
}

func (b *Broker) effectiveExpiry(req ConnectRequest) time.Duration {
	e := req.Expiry
	if req.UseDefaultExpiry {
		e = b.cfg.DefaultExpiry
		if e == 0 {
			e = NeverExpire
		}
	}
	if b.cfg.MaxExpiry > 0 && e > b.cfg.MaxExpiry {
		e = b.cfg.MaxExpiry
	}
	return e
}

// ClampExpiry applies the configured maximum session expiry to d, so
// adapters can report the expiry actually granted (MQTT 5 CONNACK).
func (b *Broker) ClampExpiry(d time.Duration) time.Duration {
	if b.cfg.MaxExpiry > 0 && d > b.cfg.MaxExpiry {
		return b.cfg.MaxExpiry
	}
	return d
}

// endSession removes s from the session table if it is still the entry for
// its client id, then drops its subscriptions and publishes a pending will.
func (b *Broker) endSession(s *Session) {
	sh := b.shard(s.clientID)
	sh.mu.Lock()
	if sh.m[s.clientID] == s {
		delete(sh.m, s.clientID)
	}
	b.unstoreLocked(s)
	sh.mu.Unlock()
	b.dropSubscriptions(s)
	b.sessionEnded(s)
}

// expireSession runs when an offline session's expiry timer fires.
func (b *Broker) expireSession(s *Session) {
	sh := b.shard(s.clientID)
	sh.mu.Lock()
	s.mu.Lock()
	if s.ended || s.sink != nil || sh.m[s.clientID] != s {
		s.mu.Unlock()
		sh.mu.Unlock()
		return
	}
	s.ended = true
	will := s.takePendingWillLocked()
	s.stopTimersLocked()
	s.mu.Unlock()
	delete(sh.m, s.clientID)
	b.unstoreLocked(s)
	sh.mu.Unlock()
	b.dropSubscriptions(s)
	b.sessionEnded(s)
	if will != nil {
		b.publishWill(will, s.clientID) // the session ended before the will delay elapsed
	}
}

// unstoreLocked removes an ending session from the store while its shard
// is locked, so that the removal is submitted before the records of a
// session that a Connect creates for the same client id right after.
func (b *Broker) unstoreLocked(s *Session) {
	if b.store == nil {
		return
	}
	s.mu.Lock()
	s.dropStoredLocked()
	s.mu.Unlock()
	s.flushWrites(true)
}

// SessionCount returns the number of sessions, online and offline.
func (b *Broker) SessionCount() int {
	n, _ := b.sessionCounts()
	return n
}

// sessionCounts returns the number of sessions and, of those, the ones
// without a connection (kept for their expiry), counted in one pass.
func (b *Broker) sessionCounts() (all, offline int) {
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		all += len(sh.m)
		for _, s := range sh.m {
			if !s.online.Load() {
				offline++
			}
		}
		sh.mu.Unlock()
	}
	return all, offline
}

// Publish routes a message that no client session published (the broker
// itself, $SYS, delayed messages, tests). It is not authorized.
func (b *Broker) Publish(msg *Message) error {
	return b.publish(msg, nil, nil)
}

// publish routes msg and, with a store, waits until its writes are
// durable.
func (b *Broker) publish(msg *Message, info *ClientInfo, from *Session) error {
	return b.publishW(msg, info, from, b.newWrites(), nil)
}

// publishW routes msg, collecting its store writes in w (nil: none). With
// done nil it commits them and waits until they are durable; otherwise it
// submits them and done gets the outcome (see submit). A refused message
// writes nothing, and done is then not called.
func (b *Broker) publishW(msg *Message, info *ClientInfo, from *Session, w *writes, done func(error)) error {
	if err := b.route1(msg, info, from, w); err != nil {
		w.discard()
		return err
	}
	if done == nil {
		return b.commit(w, true)
	}
	b.submit(w, done)
	return nil
}

// PublishAs routes a message on behalf of a client that has no session
// (a connectionless CoAP request, an MQTT-SN QoS -1 publish): it is
// authorized as info and its Origin set from it.
func (b *Broker) PublishAs(info *ClientInfo, msg *Message) error {
	msg.Origin = Origin{Protocol: info.Protocol, ClientID: info.ClientID, Username: info.Username, Listener: info.Listener}
	return b.publish(msg, info, nil)
}

// PublishAsAsync is PublishAs without the wait: it routes msg and returns
// its refusal, if any (done is then not called); otherwise done reports,
// exactly once, when the message's writes are durable — at once when there
// are none, else on the store's commit goroutine, so done must not block.
// An adapter that reads one socket for many clients (CoAP) uses it so that
// one client's durable publish does not hold up the others' datagrams,
// while its acknowledgement still waits for the store.
func (b *Broker) PublishAsAsync(info *ClientInfo, msg *Message, done func(error)) error {
	msg.Origin = Origin{Protocol: info.Protocol, ClientID: info.ClientID, Username: info.Username, Listener: info.Listener}
	return b.publishW(msg, info, nil, b.newWrites(), done)
}

// publishWill publishes the will of clientID, removing its PendingWill
// record (if stored) in the same batch.
func (b *Broker) publishWill(w *Will, clientID string) {
	b.stats.WillsPublished.Add(1)
	m := *w.Msg
	m.Created = time.Now()
	m.Arrived = 0 // published now, not when its CONNECT arrived
	if w.Expiry > 0 {
		m.ExpiresAt = m.Created.Add(w.Expiry)
	}
	wr := b.newWrites()
	if wr != nil && w.stored {
		wr.b.DeleteWill(clientID)
	}
	if err := b.route1(&m, nil, nil, wr); err != nil {
		b.log.Debug("will not published", zap.String("topic", m.Topic), zap.Error(err))
	}
	if err := b.commit(wr, true); err != nil {
		b.log.Debug("will not stored", zap.String("topic", m.Topic), zap.Error(err))
	}
}

// CheckTopicName validates a topic name against the protocol rules and the
// configured limits.
func (b *Broker) CheckTopicName(name string) error {
	if b.cfg.MaxDelayed > 0 && strings.HasPrefix(name, delayedPrefix) {
		// "$delayed/{seconds}/{topic}" is checked when it is delayed.
		return nil
	}
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidTopic, err)
	}
	return b.checkLimits(name)
}

func (b *Broker) checkLimits(s string) error {
	if b.cfg.MaxTopicLength > 0 && len(s) > b.cfg.MaxTopicLength {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTopicTooLong, len(s), b.cfg.MaxTopicLength)
	}
	if b.cfg.MaxTopicLevels > 0 && topic.Levels(s) > b.cfg.MaxTopicLevels {
		return fmt.Errorf("%w: more than %d levels", ErrTopicTooLong, b.cfg.MaxTopicLevels)
	}
	return nil
}

// route1 checks, retains and routes one message (or delays it).
func (b *Broker) route1(msg *Message, info *ClientInfo, from *Session, w *writes) error {
	if err := b.CheckTopicName(msg.Topic); err != nil {
		return err
	}
	if info != nil {
		// Clients may not write the broker's own $SYS tree.
		if topic.IsSys(msg.Topic) || !b.authz.Authorize(info, Access{Action: ActionPublish, Topic: msg.Topic, QoS: msg.QoS, Retain: msg.Retain}) {
			return ErrNotAuthorized
		}
	}
	if msg.Created.IsZero() {
		msg.Created = time.Now()
	}
	if max := b.cfg.MaxMessageExpiry; max > 0 {
		if limit := msg.Created.Add(max); msg.ExpiresAt.IsZero() || msg.ExpiresAt.After(limit) {
			msg.ExpiresAt = limit
		}
	}
	if b.cfg.MaxDelayed > 0 && strings.HasPrefix(msg.Topic, delayedPrefix) {
		return b.delay(msg, info, w)
	}
	b.stats.MessagesReceived.Add(1)
	b.stats.BytesReceived.Add(uint64(len(msg.Payload) + len(msg.Topic)))
	if msg.Retain {
		if err := b.retain(msg); err != nil {
			return err
		}
		storeRetained(w, msg)
	}
	b.route(msg, from, w)
	return nil
}

// retain stores or, for an empty payload, deletes the topic's retained
// message [MQTT-3.3.1-5], [MQTT-3.3.1-10], [MQTT-3.3.1-11]. A new topic
// beyond limits.max_retained is refused as a whole (not routed either), so
// the publisher learns of it (MQTT 5: 0x97) rather than believing the
// message is kept.
func (b *Broker) retain(msg *Message) error {
	if len(msg.Payload) == 0 {
		b.retained.Delete(msg.Topic)
		return nil
	}
	if _, ok := b.retained.SetWithin(msg.Topic, msg, b.cfg.MaxRetained); !ok {
		b.log.Debug("retained store full", zap.String("topic", msg.Topic))
		return fmt.Errorf("%w: %d retained messages", ErrQuotaExceeded, b.cfg.MaxRetained)
	}
	return nil
}

// RetainedCount returns the number of retained messages.
func (b *Broker) RetainedCount() int { return b.retained.Len() }

// Retained returns the retained message of a concrete topic, if any and not
// expired (used by CoAP's plain GET).
func (b *Broker) Retained(topicName string) (*Message, bool) {
	m, ok := b.retained.Get(topicName)
	if !ok || m.Expired(time.Now()) {
		return nil, false
	}
	return m, true
}

func (b *Broker) newSessionKey(clientID string) string {
	return clientID + "\x00" + strconv.FormatUint(b.keySeq.Add(1), 36)
}
