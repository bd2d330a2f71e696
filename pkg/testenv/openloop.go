package testenv

import (
	"slices"
	"sync"
	"syscall"
	"time"
)

// OpenLoopResult is one open-loop run.
type OpenLoopResult struct {
	Sent, Failed int
	// Latencies are measured from each request's intended send time, so a
	// stalled server is charged for the requests that queued behind it
	// (the correction wrk2 makes for coordinated omission).
	P50, P99, Max time.Duration
	// GeneratorCPU is the CPU time this process used during the run.
	GeneratorCPU time.Duration
	Elapsed      time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// OpenLoop sends op at a fixed rate for d, whatever the answers' speed,
// from up to workers goroutines, and reports latency from intended send
// times.
func OpenLoop(rate float64, d time.Duration, workers int, op func() error) OpenLoopResult {
	interval := time.Duration(float64(time.Second) / rate)
	n := int(d / interval)
	type job struct{ at time.Time }
	jobs := make(chan job, n)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	failed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if w := time.Until(j.at); w > 0 {
					time.Sleep(w)
				}
				err := op()
				l := time.Since(j.at)
				mu.Lock()
				lat = append(lat, l)
				if err != nil {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	cpu0, start := cpuTime(), time.Now()
	for i := range n {
		jobs <- job{at: start.Add(time.Duration(i) * interval)}
	}
	close(jobs)
	wg.Wait()
	r := OpenLoopResult{Sent: n, Failed: failed, GeneratorCPU: cpuTime() - cpu0, Elapsed: time.Since(start)}
	slices.Sort(lat)
	if len(lat) > 0 {
		r.P50, r.P99, r.Max = lat[len(lat)/2], lat[(len(lat)-1)*99/100], lat[len(lat)-1]
	}
	return r
}
