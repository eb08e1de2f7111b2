// Package loadgen drives an operation at a fixed concurrency for a while and
// reports throughput and latency percentiles. It is what `ppml bench` uses.
package loadgen

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Result summarises one run.
type Result struct {
	Name        string        `json:"name"`
	Concurrency int           `json:"concurrency"`
	Ops         int           `json:"ops"`
	Errors      int           `json:"errors"`
	FirstError  string        `json:"first_error,omitempty"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	OpsPerSec   float64       `json:"ops_per_sec"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	// CPU time (user + system) per successful operation: this process's
	// (the load generator's own cost) and, when the caller measured it,
	// the server's (bench: --server-pid). Zero when not measured.
	ClientCPUPerOp time.Duration `json:"client_cpu_per_op_ns,omitempty"`
	ServerCPUPerOp time.Duration `json:"server_cpu_per_op_ns,omitempty"`
}

// Run calls op from concurrency goroutines until d passes (or maxOps calls
// were made, if maxOps > 0), then reports.
func Run(ctx context.Context, name string, concurrency int, d time.Duration, maxOps int, op func(context.Context) error) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		firstErr string
		issued   int
		wg       sync.WaitGroup
	)
	start := time.Now()
	cpu0, cpuErr := ProcessCPU()
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			for ctx.Err() == nil {
				if maxOps > 0 {
					mu.Lock()
					if issued >= maxOps {
						mu.Unlock()
						break
					}
					issued++
					mu.Unlock()
				}
				t := time.Now()
				err := op(ctx)
				if ctx.Err() != nil {
					break // cut off by the deadline: not a measurement
				}
				if err != nil {
					mu.Lock()
					if errs == 0 {
						firstErr = err.Error()
					}
					errs++
					mu.Unlock()
					continue
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, cpuErr1 := ProcessCPU()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := Result{Name: name, Concurrency: concurrency, Ops: len(lat), Errors: errs, FirstError: firstErr, Elapsed: elapsed}
	if len(lat) > 0 {
		r.OpsPerSec = float64(len(lat)) / elapsed.Seconds()
		r.P50 = Percentile(lat, 0.50)
		r.P99 = Percentile(lat, 0.99)
		if cpuErr == nil && cpuErr1 == nil {
			r.ClientCPUPerOp = (cpu1 - cpu0) / time.Duration(len(lat))
		}
	}
	return r
}

// Percentile returns the q-quantile of sorted latencies (nearest rank).
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
