package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/relayd"
)

// RelaydStatus is what `pfcarp relayctl show` reads (GET /v1/relayd):
// relayd's redirections, tables and hosts as relayctl(8) shows them
// (relayctl.c show_summary_msg), with their IDs. Field names are the JSON
// relayctl's --json prints; keep them stable.
type RelaydStatus struct {
	Config    string           `json:"config"`
	Redirects []RelaydRedirect `json:"redirects"`
	Tables    []RelaydTable    `json:"tables"`
	Hosts     []RelaydHost     `json:"hosts"`
	Syncs     uint64           `json:"syncs"`
	LastError string           `json:"last_sync_error,omitempty"`
}

// RelaydRedirect is one redirection.
type RelaydRedirect struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	// Status is relayctl's print_rdr_status: active, active (using
	// backup table), down or disabled.
	Status   string `json:"status"`
	Disabled bool   `json:"disabled"`
	Anchor   string `json:"anchor"`
	// Tables are the IDs of the main table and, if any, the backup table.
	Tables []int `json:"tables"`
}

// RelaydTable is one table as a forward line uses it (name and port).
type RelaydTable struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Port uint16 `json:"port"`
	// Status is print_table_status: active (N hosts), empty or disabled.
	Status  string `json:"status"`
	Up      int    `json:"up"`
	Check   string `json:"check"`
	Demote  string `json:"demote,omitempty"`
	Demoted bool   `json:"demoted"`
	Hosts   []int  `json:"hosts"`
}

// RelaydHost is one host of a table.
type RelaydHost struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	TableID int    `json:"table_id"`
	Table   string `json:"table"`
	Parent  int    `json:"parent,omitempty"`
	// State is up, down or unknown (as checked); Status is what relayctl
	// prints (print_host_status: disabled, else the state).
	State    string `json:"state"`
	Status   string `json:"status"`
	Disabled bool   `json:"disabled"`
	// InPool: the host was in the pool the last successful sync put in
	// the kernel.
	InPool       bool    `json:"in_pool"`
	Checks       uint64  `json:"checks"`
	UpChecks     uint64  `json:"up_checks"`
	Retries      int     `json:"retries_left"`
	Availability float64 `json:"availability"`
	// ChecksRun, Ups and Downs count since the daemon started (kept over
	// reloads); LastCheck is the duration of the last check in seconds.
	ChecksRun uint64  `json:"checks_run"`
	Ups       uint64  `json:"transitions_up"`
	Downs     uint64  `json:"transitions_down"`
	LastCheck float64 `json:"last_check_seconds"`
	CheckSum  float64 `json:"check_seconds_total"`
}

// RelaydStatus returns relayd's state; ok is false when relayd is not
// running.
func (d *Daemon) RelaydStatus() (st RelaydStatus, ok bool) {
	r := d.relayd.Load()
	if r == nil {
		return st, false
	}
	return r.status(), true
}

func (r *relaydRun) status() RelaydStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := RelaydStatus{Config: r.file, Redirects: []RelaydRedirect{}, Tables: []RelaydTable{}, Hosts: []RelaydHost{}, Syncs: r.syncs}
	if r.lastErr != nil {
		st.LastError = r.lastErr.Error()
	}
	if r.cfg == nil {
		return st
	}
	up := r.upLocked()
	for i, rd := range r.cfg.Redirects {
		x := RelaydRedirect{ID: i + 1, Name: rd.Name, Anchor: relayd.AnchorPath(rd.Name), Tables: []int{},
			Disabled: rd.Disabled || r.rdrOff[rd.Name]}
		for _, f := range []*relayd.Forward{rd.Forward, rd.Backup} {
			if f != nil && f.Instance != nil {
				x.Tables = append(x.Tables, f.Instance.ID)
			}
		}
		active := relayd.ActiveTable(rd, up)
		switch {
		case x.Disabled:
			x.Status = "disabled"
		case active == nil:
			x.Status = "down"
		case rd.Backup != nil && active == rd.Backup.Instance:
			x.Status = "active (using backup table)"
		default:
			x.Status = "active"
		}
		st.Redirects = append(st.Redirects, x)
	}
	for _, t := range r.cfg.Instances {
		x := RelaydTable{ID: t.ID, Name: t.Name, Port: t.Port, Check: t.Check.Kind.String(), Demote: t.Demote,
			Demoted: r.demoted[hostKey{table: t.Name, port: t.Port}], Hosts: []int{}}
		for _, h := range t.Hosts {
			x.Hosts = append(x.Hosts, h.ID)
			if up[h.ID] {
				x.Up++
			}
			hr := r.hosts[h.ID]
			if hr == nil {
				continue
			}
			hs := RelaydHost{ID: h.ID, Name: h.Name, TableID: t.ID, Table: t.Name, Parent: h.ParentID,
				State: hr.st.State.String(), Disabled: r.hostOff[hr.key], InPool: hr.wasUp, Checks: hr.st.CheckCount,
				UpChecks: hr.st.UpCount, Retries: hr.st.RetryCount, Availability: hr.st.Availability(),
				ChecksRun: hr.checks, Ups: hr.ups, Downs: hr.downs, LastCheck: hr.lastDur.Seconds(), CheckSum: hr.durSum.Seconds()}
			hs.Status = hs.State
			if hs.Disabled {
				hs.Status = "disabled"
			}
			st.Hosts = append(st.Hosts, hs)
		}
		switch {
		case t.Disabled:
			x.Status = "disabled"
		case x.Up == 0:
			x.Status = "empty"
		default:
			x.Status = fmt.Sprintf("active (%d hosts)", x.Up)
		}
		st.Tables = append(st.Tables, x)
	}
	return st
}

// errRelaydNoMatch: no host or redirection has the ID or name given.
var errRelaydNoMatch = errors.New("no such ID or name")

// setHost disables (off) or enables the hosts with ID or name arg (a
// host name may be in several tables: each is changed), as relayctl's
// host disable|enable; the pools are synced before it returns.
func (r *relaydRun) setHost(arg string, off bool) error {
	id, numErr := strconv.Atoi(arg)
	r.mu.Lock()
	n := 0
	for hid, h := range r.hosts {
		if (numErr == nil && hid == id) || (numErr != nil && h.key.host == arg) {
			if off {
				r.hostOff[h.key] = true
			} else {
				delete(r.hostOff, h.key)
			}
			n++
		}
	}
	r.mu.Unlock()
	if n == 0 {
		return fmt.Errorf("host %s: %w", arg, errRelaydNoMatch)
	}
	return r.syncWait(false)
}

// setRedirect disables or enables the redirection with ID or name arg.
func (r *relaydRun) setRedirect(arg string, off bool) error {
	id, numErr := strconv.Atoi(arg)
	r.mu.Lock()
	name := ""
	for i, rd := range r.cfg.Redirects {
		if (numErr == nil && i+1 == id) || rd.Name == arg {
			name = rd.Name
		}
	}
	if name != "" {
		if off {
			r.rdrOff[name] = true
		} else {
			delete(r.rdrOff, name)
		}
	}
	r.mu.Unlock()
	if name == "" {
		return fmt.Errorf("redirect %s: %w", arg, errRelaydNoMatch)
	}
	return r.syncWait(false)
}

// ReloadRelayd reads relayd.conf again and applies it (relayctl reload),
// writing every anchor again: a bad file changes nothing and is an error
// with its file and line.
func (d *Daemon) ReloadRelayd() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	r := d.relayd.Load()
	if r == nil {
		return errRelaydOff
	}
	cfg := d.config()
	rc, err := d.readRelayd(cfg.Relayd.Conf, cfg.Host(netdb.System()))
	if err != nil {
		d.log.Error("relayctl reload failed; the running configuration is unchanged", "err", err)
		return err
	}
	// Every anchor is written again, also when unchanged: a reload
	// repairs anchors something else flushed (pfctl -a relayd/NAME -F).
	r.markForget()
	if err := r.swap(rc, cfg.Relayd.Conf); err != nil {
		return err
	}
	d.log.Info("relayctl reload: relayd.conf applied", "config", cfg.Relayd.Conf)
	return nil
}

var errRelaydOff = errors.New("relayd is not running (relayd_enable is not YES)")

// relaydHandlers serves relayctl on the control socket.
func (d *Daemon) relaydHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/relayd", func(w http.ResponseWriter, _ *http.Request) {
		st, ok := d.RelaydStatus()
		if !ok {
			http.Error(w, errRelaydOff.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("POST /v1/relayd/{kind}/{arg}/{op}", func(w http.ResponseWriter, req *http.Request) {
		r := d.relayd.Load()
		if r == nil {
			http.Error(w, errRelaydOff.Error(), http.StatusConflict)
			return
		}
		off := req.PathValue("op") == "disable"
		if !off && req.PathValue("op") != "enable" {
			http.Error(w, "want disable or enable", http.StatusNotFound)
			return
		}
		var err error
		switch req.PathValue("kind") {
		case "host":
			err = r.setHost(req.PathValue("arg"), off)
		case "redirect":
			err = r.setRedirect(req.PathValue("arg"), off)
		default:
			http.Error(w, "want host or redirect", http.StatusNotFound)
			return
		}
		commandResult(w, err)
	})
	mux.HandleFunc("POST /v1/relayd/reload", func(w http.ResponseWriter, _ *http.Request) {
		commandResult(w, d.ReloadRelayd())
	})
}

// CommandResult is the answer to a relayctl command.
type CommandResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func commandResult(w http.ResponseWriter, err error) {
	res := CommandResult{OK: err == nil}
	if err != nil {
		res.Error = err.Error()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	writeJSON(w, res)
}
