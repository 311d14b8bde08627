package nft

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/nftables/userdata"
)

// maxComment is the longest comment payload per kernel rule: the kernel
// keeps at most 256 bytes of user data (NFT_USERDATA_MAXLEN); a comment TLV
// costs 2 bytes of header and a NUL.
const maxComment = 250

// Record chunks in MetaChain are comments "M<payload>" (first chunk of a
// record) and "m<payload>" (continuations). The payload of a record is
// newline-separated: "kind nr", pos, text, then one line per label; newlines
// inside fields are replaced by spaces (pf.conf cannot express them anyway).
func encodeRecord(r Record) []string {
	clean := func(s string) string { return strings.ReplaceAll(s, "\n", " ") }
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d\n%s\n%s", r.Kind, r.Nr, clean(r.Pos), clean(r.Text))
	for _, l := range r.Labels {
		b.WriteByte('\n')
		b.WriteString(clean(l))
	}
	payload := b.String()
	var chunks []string
	first := true
	for first || payload != "" {
		n := min(len(payload), maxComment-1)
		tag := "m"
		if first {
			tag = "M"
		}
		chunks = append(chunks, tag+payload[:n])
		payload = payload[n:]
		first = false
	}
	return chunks
}

// decodeRecords rebuilds records from MetaChain comments in rule order.
func decodeRecords(comments []string) ([]Record, error) {
	var payloads []string
	for _, c := range comments {
		switch {
		case strings.HasPrefix(c, "M"):
			payloads = append(payloads, c[1:])
		case strings.HasPrefix(c, "m") && len(payloads) > 0:
			payloads[len(payloads)-1] += c[1:]
		default:
			return nil, fmt.Errorf("chain %s: unexpected comment %q", MetaChain, c)
		}
	}
	out := make([]Record, 0, len(payloads))
	for _, p := range payloads {
		lines := strings.Split(p, "\n")
		if len(lines) < 3 {
			return nil, fmt.Errorf("chain %s: malformed record %q", MetaChain, p)
		}
		k, nr, ok := strings.Cut(lines[0], " ")
		kind, kok := ParseKind(k)
		n, err := strconv.Atoi(nr)
		if !ok || !kok || err != nil {
			return nil, fmt.Errorf("chain %s: malformed record head %q", MetaChain, lines[0])
		}
		r := Record{Kind: kind, Nr: n, Pos: lines[1], Text: lines[2]}
		if len(lines) > 3 {
			r.Labels = lines[3:]
		}
		out = append(out, r)
	}
	return out, nil
}

// commentData returns the user data of a rule whose only user data is
// comment s.
func commentData(s string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, s)
}

// dataComment returns the comment in a rule's user data.
func dataComment(ud []byte) (string, bool) {
	// Walk the TLVs by hand: userdata.Get trusts the lengths.
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return "", false
		}
		if userdata.Type(typ) == userdata.TypeComment {
			return strings.TrimSuffix(string(ud[2:2+n]), "\x00"), true
		}
		ud = ud[2+n:]
	}
	return "", false
}

var errNoTable = errors.New("no pf ruleset loaded (table inet " + TableName + " does not exist)")
