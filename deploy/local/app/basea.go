package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
	"github.com/strata-bureau/strata/pkg/pki"
)

// Identities that get certificates from the local CA: the three bases'
// servers, the gateway (a client of each), the auditors' CLI, Base B's
// export tool, and the internal writers (the launcher seeds Base B as
// baseb-loader). deploy/k8s/README.md lists the same for production.
var identities = []string{"rabbitmq", "base-a", "base-b", "base-c", "gateway", "strata-audit", "basea-loader", "baseb-export", "baseb-loader", "basec-admin"}

// localPKI makes (once) the local CA and a certificate per identity under
// DataDir/pki, and returns their files by identity.
func localPKI(dataDir string) (map[string]pki.Files, error) {
	dir := filepath.Join(dataDir, "pki")
	ca, err := pki.LoadOrCreateCA(dir, "Strata local CA")
	if err != nil {
		return nil, err
	}
	out := map[string]pki.Files{}
	for _, id := range identities {
		f := pki.Files{Cert: filepath.Join(dir, id+".crt"), Key: filepath.Join(dir, id+".key"), CA: filepath.Join(dir, "ca.crt")}
		if _, err := os.Stat(f.Key); err != nil {
			leaf, err := ca.Issue(id, id, "localhost", "127.0.0.1")
			if err != nil {
				return nil, err
			}
			if f, err = ca.Write(dir, id, leaf); err != nil {
				return nil, err
			}
		}
		out[id] = f
	}
	return out, nil
}

// secretKey returns a persistent random key of n bytes, base64-encoded.
func (s *secretStore) key(name string, n int) (string, error) {
	path := filepath.Join(s.dir, name)
	if b, err := os.ReadFile(path); err == nil {
		return string(b), nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", err
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	k := base64.StdEncoding.EncodeToString(b)
	return k, os.WriteFile(path, []byte(k), 0o600)
}

func baseaSpec(cfg Config, stores *Stores, secrets *secretStore, b *broker, demo map[string]string) (serviceSpec, error) {
	certs, err := localPKI(cfg.DataDir)
	if err != nil {
		return serviceSpec{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	appPassword, err := secrets.get("basea-app-db.password")
	if err != nil {
		return serviceSpec{}, err
	}
	ownerPassword, err := secrets.get("basea-owner-db.password")
	if err != nil {
		return serviceSpec{}, err
	}
	// The owner migrates (base-a migrate); the service runs as the app
	// role, which may purge audit rows only through audit_purge.
	ownerURL, appURL, err := stack.ProvisionDatabase(ctx, stores.DatabaseURL, stack.DatabaseRoles{Database: cfg.DatabaseName("strata_basea"),
		Owner: "strata_basea_owner", OwnerPassword: ownerPassword, App: "strata_basea_app", AppPassword: appPassword,
		AppMemberOf: []string{"strata_basea_purge"}})
	if err != nil {
		return serviceSpec{}, fmt.Errorf("base A database: %w", err)
	}
	keys := map[string]int{"basea-data-key": 32, "basea-index-key": 32, "basea-chain-key": 32, "basea-signing-seed": 32}
	vals := map[string]string{}
	for name, n := range keys {
		if vals[name], err = secrets.key(name, n); err != nil {
			return serviceSpec{}, err
		}
	}
	srv := certs["base-a"]
	aud := certs["strata-audit"]
	demo["STRATA_AUDIT_ADDR"] = cfg.addr(7101)
	demo["STRATA_AUDIT_CERT"] = aud.Cert
	demo["STRATA_AUDIT_KEY"] = aud.Key
	demo["STRATA_AUDIT_CA"] = aud.CA
	// strata-audit verify: the log's public verifier key, where it keeps
	// the last head it verified, and the witness file the gateway appends
	// every signed head to.
	vkey, err := auditVerifierKey(secrets)
	if err != nil {
		return serviceSpec{}, err
	}
	abs, _ := filepath.Abs(cfg.DataDir)
	demo["STRATA_AUDIT_VERIFIER_KEY"] = vkey
	demo["STRATA_AUDIT_STATE"] = filepath.Join(abs, "audit", "verified-head.json")
	demo["STRATA_AUDIT_WITNESSES"] = witnessFile(cfg)
	return serviceSpec{
		name:     "base-a",
		replicas: 1,
		grpcAddr: func(int) string { return cfg.addr(7101) },
		migrate:  []string{"BASEA_MIGRATE_DATABASE_URL=" + ownerURL},
		opsAddr:  func(int) string { return cfg.addr(9101) },
		env: func(int) []string {
			return []string{
				"BASEA_GRPC_ADDR=" + cfg.addr(7101),
				"BASEA_OPS_ADDR=" + cfg.addr(9101),
				"BASEA_DATABASE_URL=" + appURL,
				"BASEA_DATA_KEYS=1:" + vals["basea-data-key"],
				"BASEA_BLIND_INDEX_KEY=" + vals["basea-index-key"],
				"BASEA_AUDIT_CHAIN_KEY=" + vals["basea-chain-key"],
				"BASEA_AUDIT_SIGNING_KEY=" + vals["basea-signing-seed"],
				"BASEA_TLS_CERT=" + srv.Cert,
				"BASEA_TLS_KEY=" + srv.Key,
				"BASEA_TLS_CA=" + srv.CA,
				"BASEA_AMQP_URL=" + b.url["base-a"],
				"BASEA_AMQP_CA=" + stores.AMQPCA,
				"BASEA_SEED_DEMO=true",
			}
		},
	}, nil
}

// witnessFile is the local stack's append-only file of witnessed heads.
func witnessFile(cfg Config) string {
	abs, _ := filepath.Abs(cfg.DataDir)
	return filepath.Join(abs, "witness", "audit-heads.log")
}

// auditVerifierKey is the public verifier key of Base A's signed heads,
// derived from its signing seed (secret store "basea-signing-seed").
func auditVerifierKey(secrets *secretStore) (string, error) {
	k, err := secrets.key("basea-signing-seed", 32)
	if err != nil {
		return "", err
	}
	seed, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(seed) != ed25519.SeedSize {
		return "", errors.New("basea-signing-seed is not a 32-byte key")
	}
	return note.NewEd25519VerifierKey("strata-audit-base-a", ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
}
