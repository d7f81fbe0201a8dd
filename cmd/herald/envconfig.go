package main

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// applyEnv sets config keys from the environment, over the file: every
// key has a variable HERALD_<TABLE>_<KEY> (HERALD_SERVER_BASE_URL,
// HERALD_SMTP_PORT, HERALD_SERVER_TLS_DOMAINS='["news.example.org"]'), and
// [[feeds]] is HERALD_FEEDS='[{url = "https://blog.example.org/feed/"}]'.
// Strings and durations are taken as written; numbers, booleans and lists
// are TOML values. This is how a container is configured without a file.
func applyEnv(cfg *Config, getenv func(string) string) error {
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	var errs []string
	for i := range t.NumField() {
		table := tomlName(t.Field(i))
		if table == "" {
			continue
		}
		if t.Field(i).Type.Kind() != reflect.Struct {
			if val := getenv(envName(table, "")); val != "" {
				if err := decodeKey(cfg, "", table, val, false); err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", envName(table, ""), err))
				}
			}
			continue
		}
		st := t.Field(i).Type
		for j := range st.NumField() {
			key := tomlName(st.Field(j))
			if key == "" {
				continue
			}
			val := getenv(envName(table, key))
			if val == "" {
				continue
			}
			ft := st.Field(j).Type
			verbatim := ft.Kind() == reflect.String || reflect.PointerTo(ft).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
			if err := decodeKey(cfg, table, key, val, verbatim); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", envName(table, key), err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// envName is the variable for a key: HERALD_SMTP_PORT for smtp.port.
func envName(table, key string) string {
	if key == "" {
		return "HERALD_" + strings.ToUpper(table)
	}
	return "HERALD_" + strings.ToUpper(table) + "_" + strings.ToUpper(key)
}

// decodeKey sets one key through the TOML decoder, so a value from the
// environment means what it would mean in the file.
func decodeKey(cfg *Config, table, key, val string, verbatim bool) error {
	var doc bytes.Buffer
	if table != "" {
		fmt.Fprintf(&doc, "[%s]\n", table)
	}
	if verbatim {
		if err := toml.NewEncoder(&doc).Encode(map[string]string{key: val}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(&doc, "%s = %s\n", key, val)
	}
	if _, err := toml.Decode(doc.String(), cfg); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("not a TOML value (%s): %q", perr.Message, val)
		}
		return err
	}
	return nil
}
