package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
)

// waitBasesServing waits until every base replica says SERVING: a base
// opens its port before it is ready (Base B and C say SERVING once they
// hear the other replicas' invalidations, and Base B needs the gateway's
// issuer), and a partner call before then finds no replica in the gateway.
func (p *platform) waitBasesServing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for name, rs := range p.specOf {
		if !strings.HasPrefix(rs.spec.name, "base-") {
			continue
		}
		var proc *stack.Proc
		for _, pr := range p.procs {
			if pr.Name == name {
				proc = pr
			}
		}
		if err := waitServing(ctx, p.cfg.DataDir, rs.spec.name, rs.spec.grpcAddr(rs.replica), proc); err != nil {
			return fmt.Errorf("%s did not become ready: %w (see %s)", name, err, filepath.Join(p.cfg.DataDir, "logs", name+".log"))
		}
	}
	return nil
}

// waitServing polls the base at addr (over mTLS, as the gateway) until its
// grpc.health.v1 status is SERVING. Each try dials afresh: a connection
// whose first handshake failed would wait out gRPC's reconnect backoff.
func waitServing(ctx context.Context, dataDir, serverName, addr string, proc *stack.Proc) error {
	last := "no answer"
	check := func() bool {
		conn, err := DialAs(dataDir, "gateway", serverName, addr)
		if err != nil {
			last = err.Error()
			return false
		}
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		r, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		switch {
		case err != nil:
			last = err.Error()
		case r.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			last = r.GetStatus().String()
		default:
			return true
		}
		return false
	}
	for !check() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving: %s", last)
		case <-procDone(proc):
			return errors.New("exited before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// procDone is p's done channel (nil, which never fires, without p).
func procDone(p *stack.Proc) <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.Done()
}

// waitBackends polls the gateway's operator /readyz until no backend
// replica is unhealthy or behind an open breaker.
func waitBackends(ctx context.Context, url string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			var body struct {
				Backends map[string]map[string]string `json:"backends"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			_ = resp.Body.Close()
			ready := err == nil && len(body.Backends) > 0
			for base, replicas := range body.Backends {
				for addr, state := range replicas {
					if state != "closed" {
						ready, last = false, base+" "+addr+" "+state
					}
				}
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New(last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitLive polls url until it answers 200.
func waitLive(ctx context.Context, url string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
