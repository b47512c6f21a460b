// Command iotgw runs the iotgw multi-protocol IoT gateway.
//
//	iotgw [--config FILE] [--print-keys] [--version] [--pprof ADDR]
//	iotgw cert dev [-force] DIR
//	iotgw passwd [-H HASH] [-c | -D] [-b] FILE USER [PASSWORD]
//	iotgw apikey add [-f FILE] NAME ROLE
//
// With no configuration file it runs on embedded defaults; every key can
// be overridden by an IOTGW_<SECTION>_<KEY> environment variable. "cert
// dev" writes throw-away certificates for trying the TLS listeners;
// "passwd" edits a password file (auth.password_file) as mosquitto_passwd
// does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // served only with --pprof
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
)

func main() {
	os.Exit(run())
}

// run returns the process exit code: 0 after a signal or for --help, 2
// for a configuration problem (a bad key or value, a listen address in
// use, a store.dir that cannot be opened), 1 for a failure at run time
// (a failed store write). Every failure that stops start-up is printed
// the same way, as plain "iotgw: <key>: <problem>" lines on standard error
// (see fail), whatever log.format says.
func run() int {
	// A subcommand is a first argument that is not a flag, so plain
	// "iotgw" and "iotgw --config FILE" run the gateway as before.
	if len(os.Args) > 1 && os.Args[1] == "cert" {
		return runCert(os.Args[2:], os.Stdout, os.Stderr)
	}
	if len(os.Args) > 1 && os.Args[1] == "passwd" {
		return runPasswd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	}
	if len(os.Args) > 1 && os.Args[1] == "apikey" {
		return runAPIKey(os.Args[2:], os.Stdout, os.Stderr)
	}
	fs := flag.NewFlagSet("iotgw", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // problems are printed below, the help on request
	configPath := fs.String("config", "", "YAML configuration `file` (optional; configs/iotgw.yaml documents every key)")
	printKeys := fs.Bool("print-keys", false, "print every configuration key with its default and description, and exit")
	version := fs.Bool("version", false, "print the version and exit")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this `address` (e.g. 127.0.0.1:6060) for profiling; keep it on loopback")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			usage(fs)
			return 0
		}
		fmt.Fprintf(os.Stderr, "iotgw: %v (see iotgw --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "iotgw: unknown subcommand or argument %q (see iotgw --help)\n", fs.Arg(0))
		return 2
	}
	if *version {
		fmt.Println("iotgw", app.Version)
		return 0
	}
	if *printKeys {
		docs, err := app.KeyDocs()
		for _, d := range docs {
			fmt.Printf("%s = %s  # %s\n", d.Key, d.Default, d.Description)
		}
		if err != nil {
			fail(err)
			return 1
		}
		return 0
	}
	cfg, err := app.LoadFile(*configPath)
	if err != nil {
		fail(err)
		return 2
	}
	log, level, err := app.NewLoggerLevel(cfg)
	if err != nil {
		fail(err)
		return 2
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush at exit

	if *pprofAddr != "" {
		// Profiling is opt-in and meant for loopback: it exposes internals.
		go func() {
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				log.Warn("pprof listener failed", zap.Error(err))
			}
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	gw, err := app.Start(ctx, cfg, log)
	if err != nil {
		// Whatever stops start-up is in the configuration's hands: a
		// listen address in use or not ours, a store.dir locked, corrupt
		// or not writable, TLS files that do not load. The error names
		// the key.
		fail(err)
		return 2
	}
	gw.SetLogLevel(level)
	log.Info("iotgw started", zap.String("version", app.Version))
	// SIGHUP re-reads the TLS files, acl.file and the authentication files
	// (the password file) now; they are also watched. A file that does not
	// load is logged and what is in use kept.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	code := -1
	for code < 0 {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading TLS material, the configuration, acl.file, authentication and API key files")
			_ = gw.Reload() // the outcome is logged
		case <-ctx.Done():
			log.Info("shutting down")
			code = 0
		case <-gw.StoreFailed():
			// The store refuses every write after a failure, so the gateway
			// could no longer acknowledge a QoS 1/2 message honestly; running
			// on would only hide the problem. A restart recovers everything
			// that was acknowledged.
			log.Error("store write failed: stopping; fix the disk and restart to recover",
				zap.String("store.dir", cfg.Store.Dir))
			defer fmt.Fprintf(os.Stderr, "iotgw: store.dir %q: a store write failed; stopped (fix the disk and restart to recover what was acknowledged)\n", cfg.Store.Dir)
			code = 1
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Stop(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown incomplete", zap.Error(err))
	}
	return code
}

// fail prints err as "iotgw: ..." lines on standard error, one per
// problem (a configuration may have several).
func fail(err error) {
	for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		fmt.Fprintf(os.Stderr, "iotgw: %s\n", strings.TrimPrefix(line, "config: "))
	}
}

const usageText = `iotgw: a multi-protocol IoT gateway. MQTT 3.1/3.1.1/5.0 (TCP, WebSocket,
TLS), MQTT-SN and CoAP (UDP, DTLS) and STOMP (TCP, WebSocket, TLS) clients
share one MQTT topic space.

Usage:
  iotgw [flags]                     run the gateway (embedded defaults without --config)
  iotgw cert dev [-force] DIR       write throw-away development certificates (CA, server, client)
  iotgw passwd [-H HASH] [-c | -D] [-b] FILE USER [PASSWORD]
                                    create or edit a password file (auth.password_file), as mosquitto_passwd
  iotgw apikey add [-f FILE] NAME ROLE
                                    add a management API key (http.api_keys_file); prints its secret once
  iotgw cert --help, iotgw passwd --help   a subcommand's own help

Flags (-flag and --flag are the same):
`

const usageConfig = `
Configuration: embedded defaults, then the --config file, then environment
variables. Every key is documented, with its default, in configs/iotgw.yaml
(the same text --print-keys prints). Any key can be set by an environment
variable IOTGW_<SECTION>_<KEY>: the key upper-cased with its dots as
underscores, e.g. IOTGW_MQTT_TCP=127.0.0.1:1883 for mqtt.tcp,
IOTGW_AUTH_JWT_SECRET for auth.jwt.secret; an empty value (IOTGW_MQTT_WS=)
disables a listener. Durations take Go syntax (10s, 1m30s, 2h) or a bare
number, which means seconds (IOTGW_SYS_INTERVAL=30 is 30s).

Exit status: 0 after SIGINT or SIGTERM; 2 for a configuration problem (an
unknown key, a bad value, a listen address in use, a store.dir that cannot
be opened), printed as "iotgw: <key>: <problem>"; 1 when a store write fails
while running. SIGHUP reloads the configuration file and the files it names
(TLS, acl.file, the password and API key files), all or nothing.
`

// usage prints the help: what iotgw is, its subcommands and flags, and
// how configuration works.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, usageText)
	fs.PrintDefaults()
	fmt.Fprint(w, usageConfig)
}
