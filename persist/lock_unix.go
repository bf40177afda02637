//go:build unix

package persist

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f, held until f is closed, so that
// two processes never share an outbox.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
