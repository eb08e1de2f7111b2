// Package ehsmsig implements eHSM's request signature: an HMAC-SHA256,
// keyed with the API key text, over a canonical string built from JSON
// values with JavaScript's loose-emptiness rules (ehsm-protocol.md §3).
// The canonical string is ambiguous by design upstream; it is reproduced
// bit-exactly for compatibility and used for nothing new.
package ehsmsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Canonical renders v (values as decoded by encoding/json with UseNumber:
// map[string]any, []any, string, json.Number, bool, nil) as the canonical
// string of an object or array.
func Canonical(v any) string {
	var b strings.Builder
	writeObject(&b, v)
	return b.String()
}

func writeObject(b *strings.Builder, v any) {
	var keys []string
	var get func(string) any
	switch o := v.(type) {
	case map[string]any:
		for k := range o {
			keys = append(keys, k)
		}
		get = func(k string) any { return o[k] }
	case []any:
		for i := range o {
			keys = append(keys, strconv.Itoa(i))
		}
		get = func(k string) any { i, _ := strconv.Atoi(k); return o[i] }
	default:
		return
	}
	sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
	first := true
	for _, k := range keys {
		val := get(k)
		if looselyEmpty(val) {
			continue
		}
		if !first {
			b.WriteByte('&')
		}
		first = false
		b.WriteString(k)
		b.WriteByte('=')
		switch x := val.(type) {
		case string:
			b.WriteString(x)
		case json.Number:
			b.WriteString(jsNumber(x))
		case bool:
			b.WriteString("true")
		case map[string]any, []any:
			writeObject(b, x)
		}
	}
}

// looselyEmpty reports whether v == ” in JavaScript.
func looselyEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case json.Number:
		f, err := x.Float64()
		return err == nil && f == 0
	case bool:
		return !x
	case []any:
		return jsArrayString(x) == ""
	}
	return false
}

// jsArrayString is String(array) in JavaScript, enough to decide emptiness.
func jsArrayString(a []any) string {
	parts := make([]string, len(a))
	for i, e := range a {
		switch x := e.(type) {
		case nil:
		case string:
			parts[i] = x
		case json.Number:
			parts[i] = jsNumber(x)
		case bool:
			parts[i] = strconv.FormatBool(x)
		case []any:
			parts[i] = jsArrayString(x)
		case map[string]any:
			parts[i] = "[object Object]"
		}
	}
	return strings.Join(parts, ",")
}

// jsNumber formats a JSON number as JavaScript's String(JSON.parse(n)) does.
func jsNumber(n json.Number) string {
	f, err := n.Float64()
	if math.IsInf(f, 1) { // an overflowing literal (ErrRange): JSON.parse gives Infinity
		return "Infinity"
	}
	if math.IsInf(f, -1) {
		return "-Infinity"
	}
	if err != nil {
		return n.String() // not JSON number text, outside Canonical's contract
	}
	if f == 0 {
		return "0"
	}
	if a := math.Abs(f); a >= 1e21 || a < 1e-6 {
		// Go pads the exponent to two digits (1.5e-07), JavaScript does
		// not (1.5e-7); here it is >= 21 or <= -7, so only "e-0" occurs.
		return strings.Replace(strconv.FormatFloat(f, 'e', -1, 64), "e-0", "e-", 1)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// lessUTF16 orders as JavaScript's Array#sort: by UTF-16 code units.
func lessUTF16(a, b string) bool {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b))) < 0
}

// Sign returns base64(HMAC-SHA256(apiKey, canonical)).
func Sign(apiKey []byte, canonical string) string {
	m := hmac.New(sha256.New, apiKey)
	m.Write([]byte(canonical))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify compares sign with the expected signature in constant time.
func Verify(apiKey []byte, canonical, sign string) bool {
	got, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, apiKey)
	m.Write([]byte(canonical))
	return hmac.Equal(got, m.Sum(nil))
}

// Envelope returns the object a request signature covers.
func Envelope(appID, nonce, timestamp string, payload any) map[string]any {
	o := map[string]any{"appid": appID, "timestamp": timestamp}
	if nonce != "" {
		o["nonce"] = nonce
	}
	if payload != nil {
		o["payload"] = payload
	}
	return o
}
