//go:build abuse

package abuse

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/pkg/testenv"
)

// profiler, when STRATA_ABUSE_PROFILE names a directory, records what the
// platform does in the second quiet and the second attack window: CPU
// profiles of Base A and the gateway (their operator pprof) and Base A's
// PostgreSQL sessions sampled every 20 ms (state, wait event, statement),
// so where the well-behaved partner's tail goes under attack can be read
// rather than guessed. Without it, capture does nothing.
type profiler struct {
	t     *testing.T
	dir   string
	ops   map[string]string
	dbURL string
}

func newProfiler(t *testing.T, s *stack) *profiler {
	dir := os.Getenv("STRATA_ABUSE_PROFILE")
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("ABUSE profiles in %s", dir)
	return &profiler{t: t, dir: dir, dbURL: testenv.PostgresAdminURL(t),
		ops: map[string]string{"gateway": s.ops[0], "base-a": s.ops[1]}}
}

// capture starts recording window label (lasting about d) when it is one
// the profiler records; the returned func waits for the recording to end.
func (p *profiler) capture(label string, d time.Duration) func() {
	if p == nil || (label != "quiet-1" && label != "attack-1") {
		return func() {}
	}
	secs := max(1, int(d/time.Second)-1)
	var wg sync.WaitGroup
	for name, addr := range p.ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", addr, secs))
			if err != nil {
				p.t.Logf("ABUSE profile %s %s: %v", label, name, err)
				return
			}
			defer res.Body.Close()
			f, err := os.Create(filepath.Join(p.dir, label+"-"+name+".pprof"))
			if err != nil {
				p.t.Logf("ABUSE profile: %v", err)
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, res.Body)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.sessions(label, time.Duration(secs)*time.Second)
	}()
	before, t0 := cpuByCommand(), time.Now()
	return func() {
		wg.Wait()
		p.writeCPU(label, before, cpuByCommand(), time.Since(t0))
	}
}

// cpuByCommand sums the CPU time (user + system, in clock ticks) of every
// live process on the machine by command name, from /proc: which programs,
// the platform's or anyone else's, used the machine during a window.
func cpuByCommand() map[string]int64 {
	out := map[string]int64{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		fields := strings.Fields(s[close+1:])
		if len(fields) < 13 {
			continue
		}
		var u, k int64
		_, _ = fmt.Sscan(fields[11], &u)
		_, _ = fmt.Sscan(fields[12], &k)
		out[s[open+1:close]] += u + k
	}
	return out
}

// writeCPU writes the CPU each command used during a window of length d
// (processes that ended within it are missing; the hostile child's own
// use is logged by the suite).
func (p *profiler) writeCPU(label string, before, after map[string]int64, d time.Duration) {
	type row struct {
		cmd string
		t   int64
	}
	var rows []row
	var total int64
	for c, t := range after {
		if dt := t - before[c]; dt > 0 {
			rows = append(rows, row{c, dt})
			total += dt
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return int(b.t - a.t) })
	var b strings.Builder
	// Clock ticks are 1/100 s on Linux.
	fmt.Fprintf(&b, "window %s: %.2f CPU-seconds in all (%.2f cores)\n", d.Round(time.Millisecond), float64(total)/100, float64(total)/100/d.Seconds())
	for _, r := range rows[:min(len(rows), 25)] {
		fmt.Fprintf(&b, "%8.2f s  %5.1f%%  %s\n", float64(r.t)/100, 100*float64(r.t)/float64(max(1, total)), r.cmd)
	}
	_ = os.WriteFile(filepath.Join(p.dir, label+"-cpu.txt"), []byte(b.String()), 0o644)
}

// sessions samples Base A's busy PostgreSQL sessions and ungranted locks
// for d and writes how often each (state, wait, statement) was seen.
func (p *profiler) sessions(label string, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dbURL)
	if err != nil {
		p.t.Logf("ABUSE sessions: %v", err)
		return
	}
	defer func() { _ = conn.Close(context.Background()) }()
	seen := map[string]int{}
	samples, waiting := 0, 0
	for ctx.Err() == nil {
		rows, err := conn.Query(ctx, `SELECT state || ' | ' || coalesce(wait_event_type || ':' || wait_event, 'cpu') || ' | ' ||
				regexp_replace(left(query, 50) || ' … ' || coalesce(substring(query from 'FROM.{0,110}'), ''), '\s+', ' ', 'g')
			FROM pg_stat_activity WHERE datname LIKE 'strata_basea%' AND state <> 'idle' AND pid <> pg_backend_pid()`)
		if err != nil {
			break
		}
		for rows.Next() {
			var k string
			if rows.Scan(&k) == nil {
				seen[k]++
			}
		}
		rows.Close()
		var n int
		if conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&n) == nil {
			waiting += n
		}
		samples++
		time.Sleep(20 * time.Millisecond)
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return seen[b] - seen[a] })
	var b strings.Builder
	fmt.Fprintf(&b, "%d samples; ungranted locks seen %d times (%.3f per sample)\n", samples, waiting, float64(waiting)/float64(max(1, samples)))
	for _, k := range keys {
		fmt.Fprintf(&b, "%6d  %.3f/sample  %s\n", seen[k], float64(seen[k])/float64(max(1, samples)), k)
	}
	_ = os.WriteFile(filepath.Join(p.dir, label+"-pg.txt"), []byte(b.String()), 0o644)
}
