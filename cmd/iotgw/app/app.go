package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/iotgw/iotgw/adapters/coap"
	"github.com/iotgw/iotgw/adapters/mqtt"
	"github.com/iotgw/iotgw/adapters/mqttsn"
	"github.com/iotgw/iotgw/adapters/stomp"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/internal/auth/httphook"
	"github.com/iotgw/iotgw/internal/mgmt"
	"github.com/iotgw/iotgw/internal/tlsconf"
)

// Version is the gateway's version string, set at build time with
// -ldflags "-X github.com/iotgw/iotgw/cmd/iotgw/app.Version=...".
var Version = "0.1.0-dev"

// Gateway is a running broker with its adapters.
type Gateway struct {
	Broker *core.Broker
	MQTT   *mqtt.Server
	STOMP  *stomp.Server
	MQTTSN *mqttsn.Server
	CoAP   *coap.Server
	// HTTP is the management listener (nil when http.listen is empty);
	// other handlers (metrics, health) go on it with HTTP.Mount.
	HTTP *mgmt.Server
	log  *zap.Logger
	// cfg is the configuration in use (replaced by a reload), under
	// cfgMu, which also serialises reloads; ac the access rules, level
	// the log level, for a reload to change.
	cfgMu sync.Mutex
	cfg   Config
	ac    *core.AccessControl
	level *zap.AtomicLevel
	// store holds the broker's durable state; closed after the broker.
	store store.Store
	// adapters in start order; stopped in reverse.
	adapters []core.Adapter
	// storeFailed is closed when a store write fails (see StoreFailed).
	storeFailed chan struct{}
	// tlsSources are the TLS material of the secured listeners, secured
	// the listeners that are on (setupTLS).
	tlsSources []*tlsconf.Source
	secured    []securedListener
	// aclFile watches acl.file (nil without one).
	aclFile *aclFile
	// hooks are the HTTP hooks in use by name ("auth.http", "acl.http"),
	// whose kept-alive connections Stop closes.
	hooks map[string]*httphook.Client
	// reloaders are the authentication backends that read files.
	reloaders []reloader
}

// StoreFailed is closed once a store write has failed. The store then
// refuses every later write, so nothing more can be acknowledged at QoS
// 1/2; the caller should stop the gateway (cmd/iotgw exits with status 1)
// and let a restart recover what is durable in store.dir.
func (g *Gateway) StoreFailed() <-chan struct{} { return g.storeFailed }

// NewLogger builds the zap logger the configuration asks for, writing to
// standard error. The console format colours the level only when standard
// error is a terminal (and NO_COLOR is not set), so a log piped to a file
// or a collector holds no escape codes.
func NewLogger(cfg Config) (*zap.Logger, error) {
	log, _, err := NewLoggerLevel(cfg)
	return log, err
}

// NewLoggerLevel is NewLogger that also returns the logger's level, for
// Gateway.SetLogLevel (a reload then changes log.level).
func NewLoggerLevel(cfg Config) (*zap.Logger, zap.AtomicLevel, error) {
	var zc zap.Config
	if cfg.LogFormat == "json" {
		zc = zap.NewProductionConfig()
	} else {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
		if term.IsTerminal(int(os.Stderr.Fd())) && os.Getenv("NO_COLOR") == "" {
			zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		zc.Development = false
		zc.DisableStacktrace = true
	}
	lvl, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("log.level: %w", err)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	log, err := zc.Build()
	return log, zc.Level, err
}

// SetLogLevel hands the gateway its logger's level, so that a reload can
// change log.level (without it, a change needs a restart).
func (g *Gateway) SetLogLevel(l zap.AtomicLevel) {
	g.cfgMu.Lock()
	g.level = &l
	g.cfgMu.Unlock()
}

// openStore opens the configured store; tests replace it to inject
// failures.
var openStore = store.Open

// Start builds the broker and starts every enabled adapter; on error
// whatever started is stopped again.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Core.Version = "iotgw " + Version
	var opts []core.Option
	aclHook, err := buildACLHook(&cfg, log.Named("acl"))
	if err != nil {
		return nil, err
	}
	var ac *core.AccessControl
	var aclf *aclFile
	if len(cfg.ACL.Rules) > 0 || !cfg.ACL.DefaultAllow || cfg.ACLFile != "" || aclHook != nil {
		ac = core.NewAccessControl(cfg.ACL, log.Named("acl"))
		if aclHook != nil {
			ac.SetHook(aclHook)
		}
		if cfg.ACLFile != "" {
			f, err := startACLFile(cfg.ACLFile, ac, log.Named("acl"))
			if err != nil {
				return nil, err
			}
			aclf = f
		}
		opts = append(opts, core.WithAuthorizer(ac))
	}
	chain, err := buildAuth(&cfg, log.Named("auth"))
	if err != nil {
		aclf.close()
		return nil, err
	}
	hooks := hookClients(chain, aclHook)
	if chain != nil {
		opts = append(opts, core.WithAuthenticator(chain))
	}
	started := false
	defer func() {
		if !started {
			closeAuth(chain) // the backends' file watchers
		}
	}()
	if len(cfg.Users) > 0 {
		opts = append(opts, core.WithAuthMethods(core.NewSCRAM(cfg.Users)))
	}
	if ms := chainMethods(&cfg); len(ms) > 0 {
		opts = append(opts, core.WithAuthMethods(ms...))
	}
	st, err := openStore(cfg.Store, log.Named("store"))
	if err != nil {
		aclf.close()
		return nil, fmt.Errorf("store.dir %q: %w", cfg.Store.Dir, err)
	}
	failed := make(chan struct{})
	opts = append(opts, core.WithStore(st), core.WithStoreFailure(func(error) { close(failed) }))
	b, err := core.New(cfg.Core, log.Named("core"), opts...)
	if err != nil {
		aclf.close()
		_ = st.Close()
		return nil, err
	}
	g := &Gateway{Broker: b, log: log, store: st, storeFailed: failed, aclFile: aclf, hooks: hooks, cfg: cfg, ac: ac}
	// fail undoes what started, for an error after this point.
	fail := func(err error) (*Gateway, error) {
		g.closeTLS()
		g.aclFile.close()
		b.Close()
		_ = st.Close()
		return nil, err
	}
	// Recovery runs before any listener accepts, so no client can see a
	// half-restored session.
	if err := b.Recover(ctx); err != nil {
		return fail(fmt.Errorf("store.dir %q: recovery: %w", cfg.Store.Dir, err))
	}
	if err := g.setupTLS(&cfg); err != nil {
		return fail(err)
	}
	if err := g.setupDTLS(&cfg); err != nil {
		return fail(err)
	}
	b.AddSysSource(g.sysTLS)
	b.AddSysSource(g.sysDTLS)
	if chain != nil {
		b.AddSysSource(chain.SysSource())
	}
	if ac != nil {
		b.AddSysSource(ac.SysSource())
	}
	for name, h := range hooks {
		b.AddSysSource(h.SysSource(name))
	}
	g.reloaders = authReloaders(chain, b)
	if cfg.MQTTSN.UDP != "" || cfg.MQTTSN.DTLSSecure != nil {
		g.MQTTSN = mqttsn.New(cfg.MQTTSN, log)
		g.adapters = append(g.adapters, g.MQTTSN)
	}
	if cfg.CoAP.UDP != "" || cfg.CoAP.DTLSSecure != nil {
		g.CoAP = coap.New(cfg.CoAP, log)
		g.adapters = append(g.adapters, g.CoAP)
	}
	if cfg.STOMP.TCP != "" || cfg.STOMP.WS != "" || cfg.STOMP.TLSSecure != nil || cfg.STOMP.WSSSecure != nil {
		g.STOMP = stomp.New(cfg.STOMP, log)
		g.adapters = append(g.adapters, g.STOMP)
	}
	// MQTT opens last, so a client that reaches mqtt.tcp knows every
	// other listener is up too (README's quick starts wait on it).
	if cfg.MQTT.TCP != "" || cfg.MQTT.WS != "" || cfg.MQTT.TLSSecure != nil || cfg.MQTT.WSSSecure != nil {
		g.MQTT = mqtt.New(cfg.MQTT, log)
		g.adapters = append(g.adapters, g.MQTT)
	}
	for i, a := range g.adapters {
		if err := a.Start(ctx, b); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = g.adapters[j].Stop(ctx)
			}
			if !strings.HasPrefix(err.Error(), a.Name()+".") {
				err = fmt.Errorf("%s: %w", a.Name(), err) // most already name their key
			}
			return fail(err)
		}
	}
	if err := g.setupHTTP(&cfg, chain); err != nil {
		for j := len(g.adapters) - 1; j >= 0; j-- {
			_ = g.adapters[j].Stop(ctx)
		}
		return fail(err)
	}
	started = true
	// $SYS publication starts once the adapters are in place: its sources
	// (sysTLS, sysDTLS) read the Gateway's adapter fields, which are set
	// above without a lock.
	b.Start()
	return g, nil
}

// Stop stops the adapters (listeners first, then connections) and the
// broker.
func (g *Gateway) Stop(ctx context.Context) error {
	var errs []error
	g.stopHTTP(ctx)
	for i := len(g.adapters) - 1; i >= 0; i-- {
		if err := g.adapters[i].Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", g.adapters[i].Name(), err))
		}
	}
	g.Broker.Close()
	for _, h := range g.hooks {
		h.Close()
	}
	g.closeTLS()
	g.aclFile.close()
	for _, r := range g.reloaders {
		_ = r.Close()
	}
	// Closing the store last makes every write of the shutdown (sessions
	// going offline, their disconnect times) durable.
	if err := g.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	return errors.Join(errs...)
}

// Addr returns a listener's real address by its configuration key
// ("mqtt.tcp", "stomp.ws", ...),
// or nil when it is disabled.
func (g *Gateway) Addr(name string) net.Addr {
	switch name {
	case "http":
		if g.HTTP != nil {
			return g.HTTP.Addr()
		}
	case "mqtt.tcp":
		if g.MQTT != nil {
			return g.MQTT.TCPAddr()
		}
	case "mqtt.ws":
		if g.MQTT != nil {
			return g.MQTT.WSAddr()
		}
	case "mqttsn.udp":
		if g.MQTTSN != nil {
			return g.MQTTSN.UDPAddr()
		}
	case "coap.udp":
		if g.CoAP != nil {
			return g.CoAP.Addr()
		}
	case "stomp.tcp":
		if g.STOMP != nil {
			return g.STOMP.TCPAddr()
		}
	case "stomp.ws":
		if g.STOMP != nil {
			return g.STOMP.WSAddr()
		}
	case "mqtt.tls":
		if g.MQTT != nil {
			return g.MQTT.ListenerAddr("tls")
		}
	case "mqtt.wss":
		if g.MQTT != nil {
			return g.MQTT.ListenerAddr("wss")
		}
	case "stomp.tls":
		if g.STOMP != nil {
			return g.STOMP.ListenerAddr("tls")
		}
	case "stomp.wss":
		if g.STOMP != nil {
			return g.STOMP.ListenerAddr("wss")
		}
	case "coap.dtls":
		if g.CoAP != nil {
			return g.CoAP.DTLSAddr()
		}
	case "mqttsn.dtls":
		if g.MQTTSN != nil {
			return g.MQTTSN.DTLSAddr()
		}
	}
	return nil
}
