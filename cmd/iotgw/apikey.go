package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/iotgw/iotgw/internal/mgmt"
)

const apikeyUsage = `usage: iotgw apikey add [-f FILE] NAME ROLE

Adds an API key for the management API (http.listen) to the keys file
FILE (http.api_keys_file; created mode 0600 if missing) and prints its
secret, once: only its hash is stored. ROLE is viewer (read), publisher
(read and publish) or admin (everything). Use it as HTTP Basic NAME:SECRET
or "Authorization: Bearer SECRET". The gateway takes the new key on its
next reload (SIGHUP or POST /api/v1/reload).

  -f FILE  the keys file (default apikeys)
`

// runAPIKey is "iotgw apikey ...": 0 done or help, 1 the file could not
// be read or written, 2 a usage error.
func runAPIKey(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("iotgw apikey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "apikeys", "keys file")
	fs.Usage = func() { fmt.Fprint(fs.Output(), apikeyUsage) }
	if len(args) == 0 || args[0] != "add" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(stdout, apikeyUsage)
			return 0
		}
		fmt.Fprint(stderr, "iotgw apikey: want the subcommand add\n"+apikeyUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, apikeyUsage)
			return 0
		}
		return 2
	}
	if fs.NArg() != 2 {
		fmt.Fprintf(stderr, "iotgw apikey: want NAME ROLE, got %d arguments\n%s", fs.NArg(), apikeyUsage)
		return 2
	}
	role, err := mgmt.ParseRole(fs.Arg(1))
	if err != nil {
		fmt.Fprintf(stderr, "iotgw apikey: %v\n", err)
		return 2
	}
	if err := mgmt.CheckName(fs.Arg(0)); err != nil {
		fmt.Fprintf(stderr, "iotgw apikey: %v\n", err)
		return 2
	}
	secret, err := mgmt.AddKey(*file, fs.Arg(0), role)
	if err != nil {
		fmt.Fprintf(stderr, "iotgw apikey: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", secret)
	fmt.Fprintf(stderr, "iotgw apikey: key %q (%s) added to %s; the secret above is shown only now\n", fs.Arg(0), role, *file)
	return 0
}
