// Package packaging holds what the Debian package is built from (nfpm.yaml,
// the systemd unit, maintainer scripts, the commented /etc/pfcarp files)
// and its root test: scripts/package.sh builds the .deb, which is
// installed with dpkg, checked, and removed again.
package packaging
