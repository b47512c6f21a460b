package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/iotgw/iotgw/internal/tlsconf"
)

const certUsage = `usage: iotgw cert dev [-force] DIR

Writes a throw-away CA (ca.pem, ca-key.pem), a server certificate for
127.0.0.1, ::1 and localhost (server.pem, server-key.pem) and a client
certificate with CN %s (client.pem, client-key.pem) into DIR, made if
missing, and prints the configuration lines that use them. For development
only: the keys are not protected. Existing files are kept unless -force.
`

// runCert is "iotgw cert ...": it returns the exit code (0 done or help,
// 1 the files could not be written, 2 a usage error).
func runCert(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "dev" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintf(stdout, certUsage, tlsconf.DevClientCN)
			return 0
		}
		fmt.Fprintf(stderr, certUsage, tlsconf.DevClientCN)
		return 2
	}
	fs := flag.NewFlagSet("iotgw cert dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	force := fs.Bool("force", false, "overwrite existing files")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), certUsage, tlsconf.DevClientCN)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	// Absolute paths in the printed configuration work from any
	// working directory.
	dir, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "iotgw cert dev: %v\n", err)
		return 1
	}
	f, err := tlsconf.WriteDevCerts(dir, *force)
	if err != nil {
		fmt.Fprintf(stderr, "iotgw cert dev: %v (-force replaces the files)\n", err)
		return 1
	}
	fmt.Fprintf(stdout, `Wrote a throw-away CA, a server certificate (127.0.0.1, ::1, localhost) and a
client certificate (CN %s) into %s. For development only.

Configuration (YAML):

tls:
  cert_file: %s
  key_file: %s
  ca_file: %s
  client_auth: request       # require: only clients with a certificate of this CA
  identity: cn               # a client certificate's CN is its user name

or the environment:

IOTGW_TLS_CERT_FILE=%s IOTGW_TLS_KEY_FILE=%s IOTGW_TLS_CA_FILE=%s IOTGW_TLS_CLIENT_AUTH=request IOTGW_TLS_IDENTITY=cn

Clients trust %s; for mutual TLS they present %s with %s,
e.g. with MQTT over TLS on :8883:

mosquitto_pub -h localhost -p 8883 --cafile %s --cert %s --key %s -t test -m hello
`, tlsconf.DevClientCN, dir, f.Server, f.ServerKey, f.CA, f.Server, f.ServerKey, f.CA,
		f.CA, f.Client, f.ClientKey, f.CA, f.Client, f.ClientKey)
	return 0
}
