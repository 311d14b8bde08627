package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The pure parts of `pfcarp lab bench` (bench_linux.go runs the steps):
// figures with median, min and max over runs, the parsers of the load
// generators' output, and the table.

// Sample is the value of one figure in each run.
type Sample struct {
	Step   string    // forwarding, failover, sync, control
	Name   string    // e.g. "new conn/s (a) pfcarp"
	Unit   string    // e.g. "conn/s", "ms"
	Values []float64 // one per run
	// Note says what a missing or bounded value is due to (a peer absent,
	// a kernel limit); it is printed in place of the numbers when Values
	// is empty and after them otherwise.
	Note string
}

// Stats returns the median, min and max of v (NaN for an empty v). The
// median of an even count is the mean of the two middle values.
func Stats(v []float64) (median, lo, hi float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

// Percentile returns the p-th percentile (0..100) of d by nearest rank
// (0 for an empty d). d is sorted in place.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	k := int(math.Ceil(p/100*float64(len(d)))) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(d) {
		k = len(d) - 1
	}
	return d[k]
}

// WrkResult is what the bench reads from wrk's report (with --latency).
type WrkResult struct {
	Requests   int64
	Seconds    float64
	RPS        float64 // "Requests/sec:"
	P50, P99   time.Duration
	Errors     int64 // connect + read + write + timeout + non-2xx/3xx
	SocketErrs string
}

var (
	wrkDone    = regexp.MustCompile(`^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),`)
	wrkRPS     = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)`)
	wrkPct     = regexp.MustCompile(`^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkSockErr = regexp.MustCompile(`^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx  = regexp.MustCompile(`^\s*Non-2xx or 3xx responses: (\d+)`)
)

// wrkUnit converts a number with one of wrk's time units to a duration.
func wrkUnit(num, unit string) (time.Duration, error) {
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	mul := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}[unit]
	return time.Duration(f * mul), nil
}

// ParseWrk reads wrk's report as printed by `wrk --latency` (wrk 4.x:
// src/wrk.c prints "N requests in T, B read", the "Latency Distribution"
// block with 50% .. 99%, "Socket errors: ..." and "Requests/sec:").
func ParseWrk(r io.Reader) (WrkResult, error) {
	var w WrkResult
	var haveDone, haveRPS, haveP50, haveP99 bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if m := wrkDone.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			d, err := wrkUnit(m[2], m[3])
			if err != nil {
				return w, fmt.Errorf("wrk: %q: %w", line, err)
			}
			w.Requests, w.Seconds, haveDone = n, d.Seconds(), true
		} else if m := wrkRPS.FindStringSubmatch(line); m != nil {
			w.RPS, _ = strconv.ParseFloat(m[1], 64)
			haveRPS = true
		} else if m := wrkPct.FindStringSubmatch(line); m != nil {
			d, err := wrkUnit(m[2], m[3])
			if err != nil {
				return w, fmt.Errorf("wrk: %q: %w", line, err)
			}
			if m[1] == "50" {
				w.P50, haveP50 = d, true
			} else {
				w.P99, haveP99 = d, true
			}
		} else if m := wrkSockErr.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				w.Errors += n
			}
			w.SocketErrs = strings.TrimSpace(line)
		} else if m := wrkNon2xx.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			w.Errors += n
		}
	}
	if err := sc.Err(); err != nil {
		return w, err
	}
	var miss []string
	if !haveDone {
		miss = append(miss, `"N requests in T"`)
	}
	if !haveRPS {
		miss = append(miss, `"Requests/sec:"`)
	}
	if !haveP50 || !haveP99 {
		miss = append(miss, "the latency distribution (run wrk with --latency)")
	}
	if len(miss) > 0 {
		return w, fmt.Errorf("wrk: report lacks %s", strings.Join(miss, ", "))
	}
	return w, nil
}

// Iperf3Result is what the bench reads from `iperf3 --json`.
type Iperf3Result struct {
	// BitsPerSecond is end.sum_received.bits_per_second: what arrived.
	BitsPerSecond float64
	Retransmits   int64
}

// ParseIperf3 reads the client's `iperf3 --json` report.
func ParseIperf3(b []byte) (Iperf3Result, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Retransmits int64 `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond *float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return Iperf3Result{}, fmt.Errorf("iperf3 --json: %w", err)
	}
	if doc.Error != "" {
		return Iperf3Result{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	if doc.End.SumReceived.BitsPerSecond == nil {
		return Iperf3Result{}, fmt.Errorf("iperf3 --json: no end.sum_received.bits_per_second")
	}
	return Iperf3Result{BitsPerSecond: *doc.End.SumReceived.BitsPerSecond, Retransmits: doc.End.SumSent.Retransmits}, nil
}

// Machine names what the figures were measured on.
type Machine struct {
	Cores  int
	CPU    string
	Kernel string
	Date   time.Time
	Note   string // e.g. "shared machine: provisional"
}

// Goal is one target of issue 13, evaluated on figures of the same run.
type Goal struct {
	What   string
	Result string // "met", "MISSED" or "n/a"
	Detail string // the figures compared
}

// Report is the bench's output: samples in step order and the goals.
type Report struct {
	Machine Machine
	Command string
	Runs    int
	Samples []*Sample
	Goals   []Goal
}

// Find returns the sample of step and name, or nil.
func (r *Report) Find(step, name string) *Sample {
	for _, s := range r.Samples {
		if s.Step == step && s.Name == name {
			return s
		}
	}
	return nil
}

// Median returns the median of the sample of step and name (ok false when
// there is no such sample or it has no values).
func (r *Report) Median(step, name string) (float64, bool) {
	s := r.Find(step, name)
	if s == nil || len(s.Values) == 0 {
		return 0, false
	}
	m, _, _ := Stats(s.Values)
	return m, true
}

// FormatValue prints v with a precision fit for its size.
func FormatValue(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "-"
	case v == math.Trunc(v) && a < 1e15: // counts
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// rows returns the table's cells: step, figure, unit, median, min, max, runs, note.
func (r *Report) rows() [][]string {
	var out [][]string
	for _, s := range r.Samples {
		row := []string{s.Step, s.Name, s.Unit}
		if len(s.Values) == 0 {
			row = append(row, "-", "-", "-", "0")
		} else {
			m, lo, hi := Stats(s.Values)
			row = append(row, FormatValue(m), FormatValue(lo), FormatValue(hi), strconv.Itoa(len(s.Values)))
		}
		out = append(out, append(row, s.Note))
	}
	return out
}

var tableHeader = []string{"step", "figure", "unit", "median", "min", "max", "runs", "note"}

func (r *Report) machineLine() string {
	m := r.Machine
	s := fmt.Sprintf("%s, %d cores (%s), kernel %s", m.Date.UTC().Format("2006-01-02 15:04 UTC"), m.Cores, m.CPU, m.Kernel)
	if m.Note != "" {
		s += "; " + m.Note
	}
	return s
}

// WriteText prints the report as an aligned plain-text table.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %s\n", r.machineLine())
	if r.Command != "" {
		fmt.Fprintf(&b, "command: %s\n", r.Command)
	}
	rows := append([][]string{tableHeader}, r.rows()...)
	width := make([]int, len(tableHeader))
	for _, row := range rows {
		for i, c := range row {
			if n := len([]rune(c)); n > width[i] {
				width[i] = n
			}
		}
	}
	for _, row := range rows {
		var line strings.Builder
		for i, c := range row {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := width[i] - len([]rune(c))
			if i >= 3 && i <= 6 { // numbers right-aligned
				line.WriteString(strings.Repeat(" ", pad) + c)
			} else if i < len(row)-1 {
				line.WriteString(c + strings.Repeat(" ", pad))
			} else {
				line.WriteString(c)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	if len(r.Goals) > 0 {
		b.WriteString("\ngoals:\n")
		for _, g := range r.Goals {
			fmt.Fprintf(&b, "  %-6s  %s: %s\n", g.Result, g.What, g.Detail)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdCell escapes a table cell for Markdown.
func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// WriteMarkdown prints the report as Markdown: the machine, the command,
// one table and the goals.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", r.machineLine())
	if r.Command != "" {
		fmt.Fprintf(&b, "Command: `%s`\n\n", r.Command)
	}
	b.WriteString("| " + strings.Join(tableHeader, " | ") + " |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|---|\n")
	for _, row := range r.rows() {
		for i := range row {
			row[i] = mdCell(row[i])
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	if len(r.Goals) > 0 {
		b.WriteString("\n| goal | result | figures |\n|---|---|---|\n")
		for _, g := range r.Goals {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", mdCell(g.What), g.Result, mdCell(g.Detail))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
