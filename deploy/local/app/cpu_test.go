package app_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-bureau/strata/deploy/local/app"
)

// cpuSample is the CPU time (user + system) used so far by each process
// of the stack, by name: the platform's services, the test environment's
// stores (postgres, rabbitmq, ferretdb — FerretDB runs inside the
// strata-local process that started the stores) and this process (the
// load generator).
type cpuSample map[string]time.Duration

func stackCPU(pl *app.Platform) cpuSample {
	out := cpuSample{}
	for name, d := range pl.CPU() {
		out[name] = d
	}
	for pid, name := range storeProcesses() {
		if st, err := readStat(pid); err == nil {
			out[name] += st.cpu
		}
	}
	if st, err := readStat(os.Getpid()); err == nil {
		out["generator"] = st.cpu
	}
	return out
}

func (s cpuSample) minus(before cpuSample) cpuSample {
	out := cpuSample{}
	for k, v := range s {
		out[k] = v - before[k]
	}
	return out
}

// per is the CPU per op summed over every process but the generator.
func (s cpuSample) per(ops int64) time.Duration {
	var sum time.Duration
	for k, v := range s {
		if k != "generator" {
			sum += v
		}
	}
	return sum / time.Duration(max(ops, 1))
}

// breakdown lists each process's CPU per op, largest first.
func (s cpuSample) breakdown(ops int64) string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return s[names[i]] > s[names[j]] })
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %dµs", k, (s[k]/time.Duration(max(ops, 1))).Microseconds()))
	}
	return strings.Join(parts, ", ")
}

type procStat struct {
	comm string
	ppid int
	cpu  time.Duration
}

// readStat reads /proc/pid/stat: the command name, the parent and the CPU
// time (clock ticks of 10 ms).
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{comm: s[open+1 : closing], ppid: ppid, cpu: time.Duration(ut+st) * 10 * time.Millisecond}, nil
}

// storeProcesses finds the processes of the stores the enclosing
// `strata-local test-env` started: its descendants, except this process,
// its ancestors and its own descendants (the platform's services, counted
// apart). It maps pid to a store name; empty when not run under test-env.
func storeProcesses() map[int]string {
	stats := map[int]procStat{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			stats[pid] = st
		}
	}
	self := os.Getpid()
	ancestors := map[int]bool{}
	env := 0
	for p := self; p > 1; p = stats[p].ppid {
		ancestors[p] = true
		if stats[p].comm == "strata-local" && env == 0 {
			env = p
		}
		if _, ok := stats[p]; !ok {
			break
		}
	}
	out := map[int]string{}
	if env == 0 {
		return out
	}
	under := func(pid, root int) bool {
		for p := pid; p > 1; p = stats[p].ppid {
			if p == root {
				return true
			}
			if _, ok := stats[p]; !ok {
				return false
			}
		}
		return false
	}
	for pid, st := range stats {
		if pid == env {
			out[pid] = "ferretdb"
			continue
		}
		if ancestors[pid] || under(pid, self) || !under(pid, env) {
			continue
		}
		switch st.comm {
		case "postgres":
			out[pid] = "postgres"
		case "beam.smp", "erl_child_setup", "epmd", "inet_gethost":
			out[pid] = "rabbitmq"
		}
	}
	return out
}
