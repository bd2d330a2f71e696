package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/strata-bureau/strata/pkg/config"
)

// reportConfig is what strata-audit subject-report reads (prefix STRATA_):
// the report spans the three bases, so it goes through the gateway with
// an auditor's API key (audit:read), not to Base A alone.
type reportConfig struct {
	GatewayURL string        `env:"GATEWAY_URL, default=http://127.0.0.1:8080"`
	AuditorKey config.Secret `env:"AUDITOR_KEY, required"`
}

func subjectReport(ctx context.Context, cfg reportConfig, cpf string, stdout, stderr io.Writer) int {
	u := strings.TrimRight(cfg.GatewayURL, "/") + "/v1/audit/subject-report/" + url.PathEscape(cpf)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		fmt.Fprintln(stderr, "strata-audit:", err)
		return 2
	}
	req.Header.Set("X-Api-Key", cfg.AuditorKey.Reveal())
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "strata-audit:", err)
		return 2
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		fmt.Fprintln(stderr, "strata-audit:", err)
		return 2
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "strata-audit: the gateway answered %d: %s\n", resp.StatusCode, body)
		return 2
	}
	_, _ = stdout.Write(body)
	return 0
}
