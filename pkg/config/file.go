package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// secretFiles reads, for every Secret field of cfg tagged `env:"NAME"`, the
// file named by NAME_FILE when NAME itself is not set: mounted Kubernetes
// secrets and rotated files work without putting the value in the
// environment. Setting both is an error. A configuration that declares
// NAME_FILE itself handles it. Errors name the variable, never the value.
func secretFiles(cfg any, l envconfig.Lookuper) (map[string]string, error) {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, nil
	}
	declared := map[string]bool{}
	var secrets []string
	collectSecrets(v.Type(), declared, &secrets)
	out := map[string]string{}
	for _, name := range secrets {
		if declared[name+"_FILE"] {
			continue
		}
		path, ok := l.Lookup(name + "_FILE")
		if !ok || path == "" {
			continue
		}
		if v, ok := l.Lookup(name); ok && v != "" {
			return nil, fmt.Errorf("set %s or %s_FILE, not both", name, name)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s_FILE: cannot read the file", name)
		}
		out[name] = strings.TrimRight(string(b), "\r\n")
	}
	return out, nil
}

// collectSecrets walks t's fields, and those of its untagged struct fields
// (an embedded config.Service), noting every declared variable and every
// Secret.
func collectSecrets(t reflect.Type, declared map[string]bool, secrets *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name = strings.TrimSpace(name); name == "" {
			if f.Type.Kind() == reflect.Struct && f.IsExported() {
				collectSecrets(f.Type, declared, secrets)
			}
			continue
		}
		declared[name] = true
		if f.Type == reflect.TypeFor[Secret]() {
			*secrets = append(*secrets, name)
		}
	}
}

// overlay answers from values first, then from l.
type overlay struct {
	values map[string]string
	l      envconfig.Lookuper
}

func (o overlay) Lookup(key string) (string, bool) {
	if v, ok := o.values[key]; ok {
		return v, true
	}
	return o.l.Lookup(key)
}

// Key names the variable as the wrapped lookuper does (with its prefix),
// so errors name SVC_PASSWORD, not PASSWORD.
func (o overlay) Key(key string) string {
	if k, ok := o.l.(interface{ Key(string) string }); ok {
		return k.Key(key)
	}
	return key
}
