// Package seed embeds the seed deployment's example files (rc.conf.lb1,
// rc.conf.lb2, pf.conf, sysctl.conf and their README), so that the pfcarp
// binary can build the seed cluster anywhere, without a source tree.
//
// seed only serves the files as they are in this directory. Adapting them to
// a lab's addresses or paths is package lab's job (lab.ClusterFiles); parsing
// them is package config's.
package seed

import (
	"embed"
	"io/fs"
)

//go:embed README.md rc.conf.lb1 rc.conf.lb2 pf.conf sysctl.conf
var files embed.FS

// Names lists the embedded configuration files (README.md excluded).
func Names() []string {
	return []string{"rc.conf.lb1", "rc.conf.lb2", "pf.conf", "sysctl.conf"}
}

// ReadFile returns the content of one embedded file, e.g. "rc.conf.lb1".
func ReadFile(name string) ([]byte, error) { return files.ReadFile(name) }

// FS returns the embedded files as a read-only file system.
func FS() fs.FS { return files }
