// Package jsontext writes the JSON form of a value as text for people: one
// "key: value" line per member, in the order the JSON has them. A command's
// text output then shows exactly what its --output json shows, without a
// second list of the fields to keep in step with the types.
package jsontext

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Object is the JSON form of a value that encodes as a JSON object: its
// members in encoding order. Member values are nil, bool, json.Number,
// string, []any or *Object.
type Object struct {
	keys []string
	vals map[string]any
}

// Of returns the JSON form of v, which must encode as a JSON object.
func Of(v any) (*Object, error) {
	f, err := form(v)
	if err != nil {
		return nil, err
	}
	o, ok := f.(*Object)
	if !ok {
		return nil, fmt.Errorf("jsontext: %T does not encode as a JSON object", v)
	}
	return o, nil
}

// form is the JSON form of v.
func form(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return decode(dec)
}

func decode(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &Object{vals: map[string]any{}}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decode(dec)
			if err != nil {
				return nil, err
			}
			o.put(k.(string), v)
		}
		_, err := dec.Token() // '}'
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := decode(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token() // ']'
		return a, err
	}
	return tok, nil
}

func (o *Object) put(key string, v any) {
	if _, ok := o.vals[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.vals[key] = v
}

// Delete removes members.
func (o *Object) Delete(keys ...string) {
	for _, k := range keys {
		if _, ok := o.vals[k]; ok {
			delete(o.vals, k)
			o.keys = remove(o.keys, k)
		}
	}
}

func remove(keys []string, k string) []string {
	for i, x := range keys {
		if x == k {
			return append(keys[:i], keys[i+1:]...)
		}
	}
	return keys
}

// Sorted returns the object as plain maps, which encoding/json encodes with
// the keys of every object sorted.
func (o *Object) Sorted() map[string]any {
	m := make(map[string]any, len(o.keys))
	for _, k := range o.keys {
		m[k] = plain(o.vals[k])
	}
	return m
}

func plain(v any) any {
	switch v := v.(type) {
	case *Object:
		return v.Sorted()
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	}
	return v
}

// keyWidth is the width of the key column (key and colon) at the top level.
const keyWidth = 22

// WriteText writes one line per member, "key:" padded to a column, then the
// value: null as <nil>, a list of words as [a b], a nested object or a list
// of anything else on the lines below, indented by two.
func (o *Object) WriteText(w io.Writer) {
	o.writeText(w, "")
}

func (o *Object) writeText(w io.Writer, indent string) {
	width := max(keyWidth-len(indent), 0)
	for _, k := range o.keys {
		v := o.vals[k]
		if s, ok := inline(v); ok {
			fmt.Fprintf(w, "%s%-*s %s\n", indent, width, k+":", s)
			continue
		}
		fmt.Fprintf(w, "%s%s:\n", indent, k)
		writeBlock(w, v, indent+"  ")
	}
}

// writeBlock writes a value that does not fit on its key's line.
func writeBlock(w io.Writer, v any, indent string) {
	switch v := v.(type) {
	case *Object:
		v.writeText(w, indent)
	case []any:
		for _, x := range v {
			if s, ok := inline(x); ok {
				fmt.Fprintf(w, "%s- %s\n", indent, s)
				continue
			}
			fmt.Fprintf(w, "%s-\n", indent)
			writeBlock(w, x, indent+"  ")
		}
	}
}

// inline is the text of a value that fits on one line: a scalar, or a list
// of scalars none of which is empty or holds white space (so the words stay
// apart).
func inline(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "<nil>", true
	case *Object:
		return "", false
	case []any:
		words := make([]string, len(v))
		for i, x := range v {
			s, ok := scalar(x)
			if !ok || s == "" || strings.ContainsAny(s, " \t\r\n") {
				return "", false
			}
			words[i] = s
		}
		return "[" + strings.Join(words, " ") + "]", true
	}
	return scalar(v)
}

func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "<nil>", true
	case bool:
		return fmt.Sprint(v), true
	case json.Number:
		return v.String(), true
	case string:
		return v, true
	}
	return "", false
}
