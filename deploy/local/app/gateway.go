package app

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
)

func gatewaySpec(cfg Config, stores *Stores, secrets *secretStore, b *broker) (serviceSpec, error) {
	certs, err := localPKI(cfg.DataDir)
	if err != nil {
		return serviceSpec{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ownerPassword, err := secrets.get("gateway-owner-db.password")
	if err != nil {
		return serviceSpec{}, err
	}
	appPassword, err := secrets.get("gateway-app-db.password")
	if err != nil {
		return serviceSpec{}, err
	}
	ownerURL, dbURL, err := stack.ProvisionDatabase(ctx, stores.DatabaseURL, stack.DatabaseRoles{Database: cfg.DatabaseName("strata_gateway"),
		Owner: "strata_gateway_owner", OwnerPassword: ownerPassword, App: "strata_gateway_app", AppPassword: appPassword})
	if err != nil {
		return serviceSpec{}, fmt.Errorf("gateway database: %w", err)
	}
	pepper, err := secrets.key("gateway-key-pepper", 32)
	if err != nil {
		return serviceSpec{}, err
	}
	seed, err := secrets.key("gateway-issuer-seed", 32)
	if err != nil {
		return serviceSpec{}, err
	}
	vkey, err := auditVerifierKey(secrets)
	if err != nil {
		return serviceSpec{}, err
	}
	gw := certs["gateway"]
	env := []string{
		// The gateway witnesses Base A's audit log: heads in its database
		// and in an append-only file strata-audit verify reads.
		"GATEWAY_AUDIT_VERIFIER_KEY=" + vkey,
		"GATEWAY_WITNESS_FILE=" + witnessFile(cfg),
		"GATEWAY_AMQP_PRODUCERS=" + b.producers(map[string]string{"audit.checkpoint.signed": "base-a"}),
		"GATEWAY_HTTP_ADDR=" + cfg.GatewayAddr,
		"GATEWAY_OPS_ADDR=" + cfg.addr(gatewayOpsPort),
		"GATEWAY_DATABASE_URL=" + dbURL,
		"GATEWAY_KEY_PEPPER=" + pepper,
		"GATEWAY_ISSUER_KEYS=1:" + seed,
		"GATEWAY_TLS_CERT=" + gw.Cert,
		"GATEWAY_TLS_KEY=" + gw.Key,
		"GATEWAY_TLS_CA=" + gw.CA,
		"GATEWAY_AMQP_URL=" + b.url["gateway"],
		"GATEWAY_AMQP_CA=" + stores.AMQPCA,
		"GATEWAY_BOOTSTRAP_FILE=" + bootstrapFile(cfg),
		"GATEWAY_BASEA_ADDR=" + cfg.addr(7101),
		"GATEWAY_BASEB_ADDRS=" + cfg.addr(7201) + "," + cfg.addr(7202),
		"GATEWAY_BASEC_ADDRS=" + cfg.addr(7301) + "," + cfg.addr(7302),
	}
	if cfg.OIDCIssuer != "" {
		env = append(env, "GATEWAY_ISSUER_ENABLED=false")
	}
	return serviceSpec{
		name:     "gateway",
		replicas: 1,
		grpcAddr: func(int) string { return cfg.GatewayAddr },
		migrate:  []string{"GATEWAY_MIGRATE_DATABASE_URL=" + ownerURL, "GATEWAY_APP_DB_ROLE=strata_gateway_app"},
		opsAddr:  func(int) string { return cfg.addr(gatewayOpsPort) },
		env:      func(int) []string { return env },
	}, nil
}

// gatewayOpsPort is the gateway's operator port (shifted by PortOffset).
const gatewayOpsPort = 9080

func bootstrapFile(cfg Config) string {
	return filepath.Join(cfg.DataDir, "secrets", "gateway-bootstrap.env")
}
