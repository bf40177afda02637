package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// startCPUProfile starts a CPU profile written to path (-cpuprofile), for
// go tool pprof; the function it returns stops it and closes the file,
// saying on w when that fails. The profile covers the broker's whole run,
// from the flags to the end of the shutdown (SIGINT or SIGTERM).
func startCPUProfile(path string) (func(w io.Writer), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile %s: %w", path, err)
	}
	return func(w io.Writer) {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(w, "broker: -cpuprofile %s: %v\n", path, err)
		}
	}, nil
}

// writeAllocProfile writes the allocations made since the start (the
// "allocs" profile, sampled as runtime.MemProfileRate says) to path
// (-memprofile), for go tool pprof -sample_index=alloc_space or
// alloc_objects; it says on w when that fails.
func writeAllocProfile(path string, w io.Writer) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		fmt.Fprintf(w, "broker: -memprofile %s: %v\n", path, err)
	}
}
