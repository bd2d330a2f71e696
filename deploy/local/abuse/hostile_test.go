//go:build abuse

package abuse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The hostile partner runs in a child process (this test binary started
// again with envHostile set), so the well-behaved partner's timings never
// share a Go runtime, its scheduler or its garbage collector with the
// harness that floods the gateway: what the suite measures is the
// platform's fairness, not the harness's.
const envHostile = "STRATA_ABUSE_HOSTILE"

// hostileJob is what the child needs: where the gateway is, the hostile
// partner's key, what it knows of the other partner (its Base C user, the
// demo OAuth client) and how long to attack.
type hostileJob struct {
	Base         string        `json:"base"`
	Key          string        `json:"key"`
	Victim       string        `json:"victim"`
	VictimBasic  string        `json:"victim_basic"`
	ClientID     string        `json:"client_id"`
	ClientSecret string        `json:"client_secret"`
	For          time.Duration `json:"for"`
}

// tally counts the answers to one kind of hostile call.
type tally struct {
	Name   string `json:"name"`
	Mal    bool   `json:"mal"`
	N      int64  `json:"n"`
	C4     int64  `json:"c4"`
	C5     int64  `json:"c5"`
	Sample string `json:"sample,omitempty"`
}

// attack is one kind of hostile call; mal says a 4xx is required (a
// malformed or forbidden call), otherwise only "no 5xx".
type attack struct {
	name string
	mal  bool
	do   func() resp
}

func attacks(s *stack, j hostileJob) []attack {
	evil, victim := j.Key, j.Victim
	big := `{"cpf":"` + strings.Repeat("1", 70_000) + `"}`
	return []attack{
		// Credentials no base could accept: refused at the edge (401).
		{"bearer with a tab", true, func() resp {
			return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Bearer abc\tdef")
		}},
		{"bearer with non-ASCII", true, func() resp {
			return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Bearer \xc3\xa9t\xc3\xa9")
		}},
		{"basic with a tab", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic\tabc")
		}},
		{"basic with non-ASCII", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic \xff\xfe")
		}},
		{"basic hiding a control character", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic "+b64(victim+":pa\x00ss"))
		}},
		{"basic not base64", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic !!!")
		}},
		{"grant token with a tab", true, func() resp {
			return s.do("GET", "/v1/people/"+demoCPF, "", "X-Api-Key", evil, "X-Strata-Grant", "sgt_a\tb")
		}},
		{"grant token non-ASCII", true, func() resp {
			return s.do("GET", "/v1/people/"+demoCPF, "", "X-Api-Key", evil, "X-Strata-Grant", "sgt_\xc3\xa9")
		}},
		{"unknown grant", true, func() resp {
			return s.do("GET", "/v1/people/"+demoCPF, "", "X-Api-Key", evil, "X-Strata-Grant", "sgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		}},
		// Well-formed, wrong: reaches the base, refused there (401).
		{"forged bearer", true, func() resp {
			return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln")
		}},
		{"wrong password for the other partner's account", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic "+b64(victim+":guess-"+strconv.Itoa(mrand.IntN(1e6))))
		}},
		// Bodies.
		{"NUL in a grant reason", true, func() resp {
			return s.do("POST", "/v1/grants", `{"cpf":"`+demoCPF+`","purpose":"credit_analysis","reason":"loan\u0000application\u0000","fields":["name"]}`, "X-Api-Key", evil)
		}},
		{"control characters in a reason", true, func() resp {
			return s.do("POST", "/v1/grants", `{"cpf":"`+demoCPF+`","purpose":"credit_analysis","reason":"loan\u001b[2J application","fields":["name"]}`, "X-Api-Key", evil)
		}},
		{"malformed JSON", true, func() resp { return s.do("POST", "/v1/grants", `{"cpf":`, "X-Api-Key", evil) }},
		{"oversized body", true, func() resp { return s.do("POST", "/v1/grants", big, "X-Api-Key", evil) }},
		{"NUL in a filter", true, func() resp {
			return s.do("GET", "/v1/audit/access-logs?page_token=a%00b", "", "X-Api-Key", evil)
		}},
		{"bad CPF", true, func() resp {
			return s.do("GET", "/v1/activity/123%00", "", "X-Api-Key", evil, "Authorization", j.VictimBasic)
		}},
		// Keys and clients.
		{"made-up API key", true, func() resp { return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", madeUpKey()) }},
		{"malformed API key", true, func() resp { return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", "strata_live_\xc3\xa9\t") }},
		{"no API key", true, func() resp { return s.do("GET", "/v1/profiles/"+demoCPF, "") }},
		{"spoofed X-Forwarded-For", true, func() resp {
			return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", madeUpKey(), "X-Forwarded-For", "198.51.100."+strconv.Itoa(mrand.IntN(250)))
		}},
		{"made-up OAuth client", true, func() resp {
			return s.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"base-b:read"}}, "client-"+strconv.Itoa(mrand.IntN(1e6)), "x")
		}},
		{"token without scope", true, func() resp {
			return s.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, j.ClientID, j.ClientSecret)
		}},
		{"another partner's admin route", true, func() resp { return s.do("GET", "/v1/admin/partners", "", "X-Api-Key", evil) }},
		{"verify without audit:read", true, func() resp { return s.do("POST", "/v1/audit/verify", "", "X-Api-Key", evil) }},
		// Expensive but allowed: must not crowd out the other partner.
		{"big audit page", false, func() resp { return s.do("GET", "/v1/audit/access-logs?page_size=500", "", "X-Api-Key", evil) }},
		{"big movements page", false, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF+"/movements?limit=100", "", "X-Api-Key", evil, "Authorization", j.VictimBasic)
		}},
	}
}

// hostileMain is the child process: it attacks for j.For from four
// workers (now and then a burst of twenty of the same call at once) and
// prints its tallies as one JSON line after a marker.
func hostileMain(spec string) int {
	var j hostileJob
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return 2
	}
	s := &stack{lean: true, base: j.Base, http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	as := attacks(s, j)
	tallies := make([]tally, len(as))
	for i, a := range as {
		tallies[i] = tally{Name: a.name, Mal: a.mal}
	}
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), j.For)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				k := i % len(as)
				n := 1
				if mrand.IntN(50) == 0 {
					n = 20
				}
				var bwg sync.WaitGroup
				for range n {
					bwg.Add(1)
					go func() {
						defer bwg.Done()
						r := as[k].do()
						tl := &tallies[k]
						atomic.AddInt64(&tl.N, 1)
						switch {
						case r.status >= 500 || r.status < 0:
							if atomic.AddInt64(&tl.C5, 1) == 1 {
								mu.Lock()
								tl.Sample = fmt.Sprintf("%d %.300s", r.status, r.raw)
								mu.Unlock()
							}
						case r.status >= 400:
							atomic.AddInt64(&tl.C4, 1)
						}
					}()
				}
				bwg.Wait()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	b, _ := json.Marshal(tallies)
	fmt.Printf("%s%s\n", tallyMarker, b)
	return 0
}

const tallyMarker = "HOSTILE-TALLIES "

// runHostile runs one attack window in a child process and returns its
// tallies and the CPU time the child used.
func runHostile(ctx context.Context, j hostileJob) ([]tally, time.Duration, error) {
	spec, _ := json.Marshal(j)
	// A real hostile partner's client runs on its own machine: here it
	// runs at the lowest CPU priority, so what its own requests cost to
	// make weighs on the partner measured as little as the shared
	// machine allows, and what is measured is what the platform spends
	// on them.
	argv := []string{os.Args[0], "-test.run=^$"}
	if nice, err := exec.LookPath("nice"); err == nil {
		argv = append([]string{nice, "-n", "19"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), envHostile+"="+string(spec))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("hostile child: %w: %.500s", err, errb.String())
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), tallyMarker); ok {
			var ts []tally
			if err := json.Unmarshal([]byte(rest), &ts); err != nil {
				return nil, 0, fmt.Errorf("hostile child: %w", err)
			}
			return ts, cpu, nil
		}
	}
	return nil, 0, fmt.Errorf("hostile child printed no tallies: %.500s %.500s", out.String(), errb.String())
}
