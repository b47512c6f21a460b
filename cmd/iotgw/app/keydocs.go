package app

import (
	"errors"
	"fmt"
	"strings"

	"github.com/iotgw/iotgw/configs"
)

// KeyDoc is one configuration key as documented in configs/iotgw.yaml.
type KeyDoc struct {
	Key         string
	Default     string
	Description string
}

// KeyDocs returns every configuration key (Keys) with its default and
// description, read from configs/iotgw.yaml as embedded in the binary. A
// listener's own tls section key (mqtt.tls_config.cert_file) is described
// by the tls key it overrides. A key the file does not describe is an
// error naming it, so the table and the file cannot drift.
func KeyDocs() ([]KeyDoc, error) {
	return keyDocs(configs.YAML, Keys())
}

func keyDocs(doc []byte, keys []string) ([]KeyDoc, error) {
	parsed, err := configs.Parse(doc)
	if err != nil {
		return nil, fmt.Errorf("configs/iotgw.yaml: %w", err)
	}
	byName := make(map[string]configs.Key, len(parsed))
	for _, k := range parsed {
		byName[k.Name] = k
	}
	var out []KeyDoc
	var errs []error
	for _, key := range keys {
		if k, ok := byName[key]; ok {
			if k.Description == "" {
				errs = append(errs, fmt.Errorf("%s: no description in configs/iotgw.yaml", key))
			}
			out = append(out, KeyDoc{key, k.Default, k.Description})
			continue
		}
		if section, name, ok := tlsOverride(key); ok {
			if _, ok := byName[section]; !ok {
				errs = append(errs, fmt.Errorf("%s: section %s not in configs/iotgw.yaml", key, section))
			}
			if _, ok := byName["tls."+name]; !ok {
				errs = append(errs, fmt.Errorf("%s: tls.%s not in configs/iotgw.yaml", key, name))
			}
			out = append(out, KeyDoc{key, "(tls." + name + ")", "tls." + name + " for this section's listeners only; unset: tls." + name})
			continue
		}
		errs = append(errs, fmt.Errorf("%s: not in configs/iotgw.yaml", key))
	}
	return out, errors.Join(errs...)
}

// tlsOverride splits "mqtt.tls_config.cert_file" into its section and the
// tls key it overrides.
func tlsOverride(key string) (section, name string, ok bool) {
	for _, s := range tlsSections {
		if rest, found := strings.CutPrefix(key, s+"."); found {
			return s, rest, true
		}
	}
	return "", "", false
}
