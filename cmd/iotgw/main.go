// Command iotgw runs the iotgw multi-protocol IoT gateway.
//
//	iotgw [--config FILE] [--print-keys]
//	iotgw cert dev [-force] DIR
//	iotgw passwd [-H HASH] [-c | -D] [-b] FILE USER [PASSWORD]
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
	"net/http"
	_ "net/http/pprof" // served only with --pprof
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
)

func main() {
	os.Exit(run())
}

// run returns the process exit code: 0 after a signal, 2 for a
// configuration problem or a listener that cannot start, 1 after a failed
// store write.
func run() int {
	// A subcommand is a first argument that is not a flag, so plain
	// "iotgw" and "iotgw --config FILE" run the gateway as before.
	if len(os.Args) > 1 && os.Args[1] == "cert" {
		return runCert(os.Args[2:], os.Stdout, os.Stderr)
	}
	if len(os.Args) > 1 && os.Args[1] == "passwd" {
		return runPasswd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	}
	fs := flag.NewFlagSet("iotgw", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (optional)")
	printKeys := fs.Bool("print-keys", false, "print every configuration key and exit")
	version := fs.Bool("version", false, "print the version and exit")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) for profiling")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *version {
		fmt.Println("iotgw", app.Version)
		return 0
	}
	if *printKeys {
		for _, k := range app.Keys() {
			fmt.Println(k)
		}
		return 0
	}
	cfg, err := app.LoadFile(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "iotgw: configuration error:\n%v\n", err)
		return 2
	}
	log, err := app.NewLogger(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "iotgw: %v\n", err)
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
		log.Error("start failed", zap.Error(err))
		return 2 // the error names the key (mostly a listen address)
	}
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
			log.Info("SIGHUP: reloading TLS material, acl.file and authentication files")
			_ = gw.Reload() // each failure is logged
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
