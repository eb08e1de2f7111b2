package attestapi

import (
	"io"
	"net/http"

	"github.com/ppml-project/ppml/fault"
)

const maxBody = 1 << 20

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, &fault.Error{Kind: fault.Invalid, Code: "bad_body", Msg: "the request body is larger than 1 MiB or could not be read"}
	}
	return b, nil
}
