package trustedsql_test

import (
	"reflect"
	"testing"

	"github.com/ppml-project/ppml/trustedsql"
)

func TestParseInputs(t *testing.T) {
	in, err := trustedsql.ParseInputs([]string{"people=data/people.csv.ppml", "x=a=b"})
	if err != nil || !reflect.DeepEqual(in, []trustedsql.Input{{Name: "people", Path: "data/people.csv.ppml"}, {Name: "x", Path: "a=b"}}) {
		t.Fatalf("%+v %v", in, err)
	}
	for _, bad := range []string{"people", "=path", "name="} {
		if _, err := trustedsql.ParseInputs([]string{bad}); err == nil || err.Error() != `--input "`+bad+`": want NAME=PATH` {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
