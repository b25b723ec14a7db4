// Package budget bounds a computation that the input can make grow
// without bound and that cannot be interrupted: evaluating a stack file
// (a for expression over for expressions, a function given a huge count)
// or rendering it. While the computation runs, a watcher reads the Go
// heap's size and the process's CPU time; past either limit it calls
// abort, which ends the process. Go has no way to stop a goroutine, and
// a fatal "out of memory" would exit 2, the code of "warnings under
// --strict".
package budget

import (
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"
)

// Limits are what a computation may take beyond what the process had.
type Limits struct {
	Memory uint64        // bytes of Go heap
	CPU    time.Duration // user and system CPU time, which a busy machine does not inflate as it does wall time
}

// every is how often the watcher looks.
const every = 2 * time.Millisecond

// gcPercent is GOGC while a computation runs.
const gcPercent = 400

// heapMetric is the bytes of live and not yet swept heap objects.
const heapMetric = "/memory/classes/heap/objects:bytes"

// Heap is the Go heap's size now.
func Heap() uint64 {
	sample := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

// CPU is the CPU time the process has used.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Run runs fn, and calls abort with what was exceeded if fn takes more
// than limits. abort must end the process (or fn's goroutine) and not
// return; Run returns after fn does.
func Run(limits Limits, abort func(exceeded string), fn func()) {
	heap, cpu := Heap(), CPU()
	// The collector works harder as the heap nears the limit, so that
	// garbage not yet collected does not count as the computation's.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(heap + limits.Memory*3/4)))
	// Below that limit, the collector runs when the heap has grown five
	// times, not twice: evaluating a large stack allocates much and
	// keeps little, and at Go's default a third of its CPU time was the
	// collector's (20,000 chained locals: 0.55 s of CPU, 0.35 s here).
	defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if used := Heap(); used > heap+limits.Memory {
					abort(fmt.Sprintf("more than %d MB of memory", limits.Memory>>20))
					return
				}
				if used := CPU() - cpu; used > limits.CPU {
					abort(fmt.Sprintf("more than %s of CPU time", limits.CPU))
					return
				}
			}
		}
	}()
	defer func() {
		close(done)
		<-stopped
	}()
	fn()
}
