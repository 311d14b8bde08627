//go:build !linux

package netdb

import (
	"errors"
	"runtime"
)

// ReadInterfaces is only implemented on Linux.
func ReadInterfaces() ([]Interface, error) {
	return nil, errors.New("netdb: reading interfaces is not supported on " + runtime.GOOS)
}
