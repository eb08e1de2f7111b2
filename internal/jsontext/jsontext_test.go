package jsontext

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Zeta  string `json:"zeta"`
	Alpha []int  `json:"alpha"`
}

type sample struct {
	Name     string    `json:"name"`
	Missing  *string   `json:"missing"`
	Count    uint16    `json:"count"`
	Big      int64     `json:"big"`
	Ratio    float64   `json:"ratio"`
	OK       bool      `json:"ok"`
	Words    []string  `json:"words"`
	Empty    []string  `json:"empty"`
	Reasons  []string  `json:"reasons"`
	At       time.Time `json:"at"`
	Omitted  string    `json:"omitted,omitempty"`
	Inner    *inner    `json:"inner"`
	Detail   inner     `json:"detail"`
	Escaped  string    `json:"escaped"`
	NilSlice []string  `json:"nil_slice"`
}

func sampleValue() sample {
	return sample{Name: "q", Count: 13, Big: 1 << 60, Ratio: 0.5, OK: true,
		Words: []string{"INTEL-SA-00289", "INTEL-SA-00615"}, Empty: []string{},
		Reasons: []string{"mr_enclave ab not in policy", "tcb_status X"},
		At:      time.Date(2025, 7, 19, 10, 1, 18, 5, time.UTC), Inner: &inner{Zeta: "z", Alpha: []int{1, 2}},
		Escaped: "<a&b>"}
}

func TestWriteTextFollowsTheJSONForm(t *testing.T) {
	o, err := Of(sampleValue())
	if err != nil {
		t.Fatal(err)
	}
	o.Delete("detail", "not-there")
	var b bytes.Buffer
	o.WriteText(&b)
	want := `name:                  q
missing:               <nil>
count:                 13
big:                   1152921504606846976
ratio:                 0.5
ok:                    true
words:                 [INTEL-SA-00289 INTEL-SA-00615]
empty:                 []
reasons:
  - mr_enclave ab not in policy
  - tcb_status X
at:                    2025-07-19T10:01:18.000000005Z
inner:
  zeta:                z
  alpha:               [1 2]
escaped:               <a&b>
nil_slice:             <nil>
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Sorted encodes byte for byte as the same value would through maps: every
// object's keys sorted, numbers as they were.
func TestSortedEncodesAsMaps(t *testing.T) {
	v := sampleValue()
	o, err := Of(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(o.Sorted(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(v)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	want, _ := json.MarshalIndent(m, "", "  ")
	if string(got) != string(want) {
		t.Errorf("sorted:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(string(got), `"big": 1152921504606846976`) || !strings.Contains(string(got), `"alpha": [`) {
		t.Errorf("numbers or nesting lost:\n%s", got)
	}
}

func TestListsOfObjectsAndOddWords(t *testing.T) {
	o, err := Of(map[string]any{"l": []any{map[string]any{"k": "v"}, "", "a b", 1}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	o.WriteText(&b)
	want := "l:\n  -\n    k:                 v\n  - \n  - a b\n  - 1\n"
	if b.String() != want {
		t.Errorf("text %q, want %q", b.String(), want)
	}
}

func TestOfRefusesNonObjects(t *testing.T) {
	for _, v := range []any{[]int{1}, "s", 3, nil} {
		if _, err := Of(v); err == nil || !strings.Contains(err.Error(), "does not encode as a JSON object") {
			t.Errorf("Of(%#v) = %v", v, err)
		}
	}
	if _, err := Of(map[string]any{"f": func() {}}); err == nil {
		t.Error("an unencodable value was accepted")
	}
}
