package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// material is one consistent load of every configured file. It is never
// changed after load, so handshakes read it without locks; a reload
// builds a new one and swaps the pointer.
type material struct {
	cert *tls.Certificate  // nil without cert_file
	leaf *x509.Certificate // cert's first certificate
	// clientCAs verifies client certificates (nil without ca_file).
	clientCAs *x509.CertPool
	// revoked holds every serial of every CRL, by issuer.
	revoked map[revKey]struct{}
	// psk maps a PSK identity to its key (nil without psk_file).
	psk map[string][]byte
	// hash covers the bytes of every file read, to tell a changed file
	// from an untouched one without parsing it.
	hash [sha256.Size]byte
	// loaded is when this material was read.
	loaded time.Time
}

// revKey names one revoked certificate: serial numbers are unique only
// per issuer.
type revKey struct {
	issuer string // raw DER of the issuer's name
	serial string // decimal
}

// files is the raw content of every configured file and its hash.
type files struct {
	cert, key, ca, crl, psk []byte
	hash                    [sha256.Size]byte
}

// readFiles reads every configured file; errors name the key and the path.
func readFiles(c Config) (files, error) {
	var f files
	var errs []error
	h := sha256.New()
	read := func(name, path string, dst *[]byte) {
		if path == "" {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, c.errorf(name, "%v", readError(err)))
			return
		}
		*dst = b
		// The key name separates files so moving bytes between two of
		// them still changes the hash.
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	read("cert_file", c.CertFile, &f.cert)
	read("key_file", c.KeyFile, &f.key)
	read("ca_file", c.CAFile, &f.ca)
	read("crl_file", c.CRLFile, &f.crl)
	read("psk_file", c.PSKFile, &f.psk)
	copy(f.hash[:], h.Sum(nil))
	return f, errors.Join(errs...)
}

// readError adds what to do to the os errors users meet.
func readError(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w (check the path; relative paths are from the working directory)", err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w (the gateway's user cannot read it)", err)
	}
	return err
}

// load reads and parses every configured file of c. Problems that make
// the material unusable are errors (all of them, joined); problems the
// gateway can run with (a certificate outside its validity period, a CRL
// past its next update) are warnings.
func load(c Config, now time.Time) (*material, []string, error) {
	f, err := readFiles(c)
	if err != nil {
		return nil, nil, err
	}
	return parse(c, f, now)
}

// parse builds the material from files already read.
func parse(c Config, f files, now time.Time) (*material, []string, error) {
	m := &material{hash: f.hash, loaded: now}
	var errs []error
	var warns []string
	if c.CertFile != "" {
		cert, leaf, err := parseKeyPair(c, f.cert, f.key)
		if err != nil {
			errs = append(errs, err)
		} else {
			m.cert, m.leaf = cert, leaf
			warns = append(warns, validityWarning(c.Key("cert_file"), c.CertFile, leaf, now)...)
		}
	}
	var cas []*x509.Certificate
	if c.CAFile != "" {
		pool, certs, err := parseCAs(c, f.ca)
		if err != nil {
			errs = append(errs, err)
		}
		m.clientCAs, cas = pool, certs
		for _, ca := range certs {
			warns = append(warns, validityWarning(c.Key("ca_file"), c.CAFile, ca, now)...)
		}
	}
	if c.CRLFile != "" {
		revoked, w, err := parseCRLs(c, f.crl, cas, now)
		if err != nil {
			errs = append(errs, err)
		}
		m.revoked = revoked
		warns = append(warns, w...)
	}
	if c.PSKFile != "" {
		psk, err := parsePSK(c, f.psk)
		if err != nil {
			errs = append(errs, err)
		}
		m.psk = psk
	}
	if err := errors.Join(errs...); err != nil {
		return nil, warns, err
	}
	return m, warns, nil
}

// parseKeyPair parses the certificate chain and its private key, telling
// apart the mistakes people make: the files swapped, an encrypted key, a
// key of another certificate.
func parseKeyPair(c Config, certPEM, keyPEM []byte) (*tls.Certificate, *x509.Certificate, error) {
	var chain [][]byte
	var sawKey bool
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			chain = append(chain, b.Bytes)
		case strings.Contains(b.Type, "PRIVATE KEY"):
			sawKey = true
		}
	}
	if len(chain) == 0 {
		hint := ""
		if sawKey {
			hint = " (it holds a private key: are cert_file and key_file swapped?)"
		}
		return nil, nil, c.errorf("cert_file", "%s: no PEM CERTIFICATE block%s", c.CertFile, hint)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, nil, c.errorf("cert_file", "%s: the first certificate does not parse: %v", c.CertFile, err)
	}
	for i, der := range chain[1:] {
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, nil, c.errorf("cert_file", "%s: certificate %d of the chain does not parse: %v", c.CertFile, i+2, err)
		}
	}
	key, err := parseKey(c, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, c.errorf("key_file", "%s: unsupported private key type %T", c.KeyFile, key)
	}
	if eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(leaf.PublicKey) {
		return nil, nil, c.errorf("key_file", "%s is not the private key of the certificate in %s (%s): were they renewed separately?", c.KeyFile, c.Key("cert_file"), c.CertFile)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, leaf, nil
}

// parseKey parses the first private key block of keyPEM.
func parseKey(c Config, keyPEM []byte) (crypto.PrivateKey, error) {
	var sawCert bool
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			sawCert = true
			continue
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		// PKCS#8 "ENCRYPTED PRIVATE KEY" and the legacy OpenSSL
		// "Proc-Type: 4,ENCRYPTED" header: say so plainly instead of the
		// parser's "asn1: structure error".
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, c.errorf("key_file", "%s: the private key is encrypted with a passphrase, which iotgw does not take; write it decrypted (openssl pkey -in %s -out key.pem) and keep that file readable only by the gateway", c.KeyFile, c.KeyFile)
		}
		if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		k, err := x509.ParseECPrivateKey(b.Bytes)
		if err != nil {
			return nil, c.errorf("key_file", "%s: the %s block is not a PKCS#8, PKCS#1 or EC private key", c.KeyFile, b.Type)
		}
		return k, nil
	}
	hint := ""
	if sawCert {
		hint = " (it holds a certificate: are cert_file and key_file swapped?)"
	}
	return nil, c.errorf("key_file", "%s: no PEM PRIVATE KEY block%s", c.KeyFile, hint)
}

// validityWarning reports a certificate outside its validity period. The
// gateway still starts: refusing would turn a renewal that is late by a
// minute into an outage, and clients refuse an expired server
// certificate anyway; the log says so with the dates.
func validityWarning(key, path string, cert *x509.Certificate, now time.Time) []string {
	what := fmt.Sprintf("%s: %s: certificate %q", key, path, cert.Subject.String())
	switch {
	case now.After(cert.NotAfter):
		return []string{fmt.Sprintf("%s expired on %s: clients will refuse it; renew it (iotgw reloads it without a restart)", what, cert.NotAfter.UTC().Format(time.RFC3339))}
	case now.Before(cert.NotBefore):
		return []string{fmt.Sprintf("%s is not valid before %s (is a clock wrong?)", what, cert.NotBefore.UTC().Format(time.RFC3339))}
	}
	return nil
}

// parseCAs parses every CERTIFICATE block of the CA file.
func parseCAs(c Config, data []byte) (*x509.CertPool, []*x509.Certificate, error) {
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, c.errorf("ca_file", "%s: certificate %d does not parse: %v", c.CAFile, len(certs)+1, err)
		}
		pool.AddCert(cert)
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, nil, c.errorf("ca_file", "%s: no PEM CERTIFICATE block, so no client certificate could be verified", c.CAFile)
	}
	return pool, certs, nil
}

// parseCRLs parses every CRL of the file (PEM "X509 CRL" blocks, or one
// DER CRL). A CRL whose issuer is one of the CAs must carry that CA's
// signature; one from another issuer (an intermediate CA the clients
// send) cannot be checked here and is used with a warning.
func parseCRLs(c Config, data []byte, cas []*x509.Certificate, now time.Time) (map[revKey]struct{}, []string, error) {
	var ders [][]byte
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "X509 CRL" {
			ders = append(ders, b.Bytes)
		}
	}
	if len(ders) == 0 {
		if bytes.Contains(data, []byte("-----BEGIN")) {
			return nil, nil, c.errorf("crl_file", "%s: no PEM X509 CRL block", c.CRLFile)
		}
		ders = [][]byte{data} // maybe DER
	}
	revoked := map[revKey]struct{}{}
	var warns []string
	for i, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, nil, c.errorf("crl_file", "%s: CRL %d does not parse: %v", c.CRLFile, i+1, err)
		}
		var issuer *x509.Certificate
		for _, ca := range cas {
			if bytes.Equal(ca.RawSubject, crl.RawIssuer) {
				issuer = ca
				break
			}
		}
		if issuer == nil {
			warns = append(warns, fmt.Sprintf("%s: %s: CRL %d is from %q, not a CA of %s: its signature is not checked", c.Key("crl_file"), c.CRLFile, i+1, crl.Issuer.String(), c.Key("ca_file")))
		} else if err := crl.CheckSignatureFrom(issuer); err != nil {
			return nil, nil, c.errorf("crl_file", "%s: CRL %d is not signed by its issuer %q in %s: %v", c.CRLFile, i+1, crl.Issuer.String(), c.Key("ca_file"), err)
		}
		if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
			// Still used: an old list of revoked certificates is better
			// than none.
			warns = append(warns, fmt.Sprintf("%s: %s: CRL %d of %q was due for an update on %s", c.Key("crl_file"), c.CRLFile, i+1, crl.Issuer.String(), crl.NextUpdate.UTC().Format(time.RFC3339)))
		}
		for _, e := range crl.RevokedCertificateEntries {
			revoked[revKey{string(crl.RawIssuer), e.SerialNumber.String()}] = struct{}{}
		}
	}
	return revoked, warns, nil
}

// parsePSK parses lines "identity:hexkey" (EMQX's and Mosquitto's
// format); blank lines and lines starting with # are skipped. The key is
// after the last colon, so an identity may contain colons.
func parsePSK(c Config, data []byte) (map[string][]byte, error) {
	psk := map[string][]byte{}
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		at := fmt.Sprintf("%s line %d", c.PSKFile, i+1)
		j := strings.LastIndexByte(line, ':')
		if j <= 0 {
			errs = append(errs, c.errorf("psk_file", "%s: want identity:hexkey", at))
			continue
		}
		id, hexKey := line[:j], line[j+1:]
		key, err := hex.DecodeString(hexKey)
		switch {
		case err != nil:
			errs = append(errs, c.errorf("psk_file", "%s: the key of %q is not hex", at, id))
			continue
		case len(key) == 0:
			errs = append(errs, c.errorf("psk_file", "%s: the key of %q is empty", at, id))
			continue
		}
		if _, dup := psk[id]; dup {
			errs = append(errs, c.errorf("psk_file", "%s: identity %q appears twice", at, id))
			continue
		}
		psk[id] = key
	}
	if len(psk) == 0 && len(errs) == 0 {
		errs = append(errs, c.errorf("psk_file", "%s: no identity:hexkey line", c.PSKFile))
	}
	return psk, errors.Join(errs...)
}

// checkRevoked refuses a peer unless one of its verified chains has no
// revoked certificate.
func (m *material) checkRevoked(chains [][]*x509.Certificate) error {
	if len(m.revoked) == 0 {
		return nil
	}
	var hit *x509.Certificate
	for _, chain := range chains {
		clean := true
		for _, cert := range chain {
			if _, ok := m.revoked[revKey{string(cert.RawIssuer), cert.SerialNumber.String()}]; ok {
				clean, hit = false, cert
				break
			}
		}
		if clean {
			return nil
		}
	}
	if hit == nil {
		return nil // no chain at all: nothing was verified, nothing to refuse here
	}
	return fmt.Errorf("certificate %q (serial %X) is revoked", hit.Subject.String(), hit.SerialNumber)
}
